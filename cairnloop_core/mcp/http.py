"""The MCP server over streamable HTTP: every request must carry a valid bearer
token, whose actor and scopes are the caller's."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import uvicorn
from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import (
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cairnloop_core.errors import ConfigurationError
from cairnloop_core.mcp.calls import Caller
from cairnloop_core.mcp.server import build_server
from cairnloop_core.mcp.tokens import ISSUE_HINT, TokenRefused, TokenStore

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop

__all__ = ["MCP_PATH", "UNAUTHORIZED", "build_http_app", "serve_http"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
# A JSON-RPC code from the range left to implementations, for refused tokens.
UNAUTHORIZED = -32010
UNAVAILABLE = -32011
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _Refused(AuthenticationError):
    """The request carries no usable bearer token."""

    def __init__(self, message: str, *, token_given: bool) -> None:
        super().__init__(message)
        self.token_given = token_given


class _CheckFailed(AuthenticationError):
    """The token could not be checked at all (the database failed)."""


class TokenUser(AuthenticatedUser):
    """The request's authenticated caller, as the SDK's session binding expects."""

    def __init__(self, caller: Caller, access: AccessToken) -> None:
        super().__init__(access)
        self.caller = caller


class TokenBackend(AuthenticationBackend):
    """Checks ``Authorization: Bearer <token>`` against the token store."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, TokenUser]:
        header = conn.headers.get("authorization")
        if header is None or not header.strip():
            raise _Refused(
                "Missing bearer token: send the header 'Authorization: Bearer "
                f"<token>'; {ISSUE_HINT}.",
                token_given=False,
            )
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Refused(
                f"The Authorization header must be 'Bearer <token>'; {ISSUE_HINT}.",
                token_given=False,
            )

        try:
            token = await anyio.to_thread.run_sync(self.store.verify, secret.strip())
        except TokenRefused as exc:
            raise _Refused(str(exc), token_given=True) from None
        except Exception as exc:
            logger.error(
                "Could not check a bearer token: %s",
                type(exc).__name__,
                extra={"event": "mcp_token_check_failed"},
            )
            raise _CheckFailed(
                "Cairnloop could not check the bearer token because its database "
                "failed; try again later."
            ) from None

        caller = Caller(token.actor, tuple(token.scopes), "http", token.name)
        access = AccessToken(
            token=token.prefix,
            client_id=f"cairnloop-token-{token.id}",
            scopes=token.scopes,
            subject=str(token.actor),
        )
        return AuthCredentials(token.scopes), TokenUser(caller, access)


def _refusal(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    message = str(exc)
    if isinstance(exc, _CheckFailed):
        return _jsonrpc_error(503, UNAVAILABLE, message, {})
    challenge = 'Bearer realm="cairnloop"'
    if isinstance(exc, _Refused) and exc.token_given:
        description = _header_safe(message)
        challenge += f', error="invalid_token", error_description="{description}"'
    logger.info(
        "Refused an MCP request: %s",
        message,
        extra={"event": "mcp_request_unauthorized"},
    )
    return _jsonrpc_error(401, UNAUTHORIZED, message, {"WWW-Authenticate": challenge})


def _header_safe(text: str) -> str:
    ascii_text = text.encode("ascii", "replace").decode()
    return ascii_text.replace("\\", "/").replace('"', "'")


def _jsonrpc_error(
    status: int, code: int, message: str, headers: dict[str, str]
) -> Response:
    # A JSON-RPC error body lets MCP clients show the reason, not only a status.
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def caller_from_request(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """The caller the bearer token of this request's HTTP request names."""
    request = ctx.request
    user = request.scope.get("user") if request is not None else None
    if not isinstance(user, TokenUser):
        raise MCPError(UNAUTHORIZED, "This request carries no authenticated caller.")
    return user.caller


def build_http_app(app: Cairnloop, *, host: str = "127.0.0.1") -> Starlette:
    """The ASGI application serving MCP at ``/mcp`` behind bearer tokens."""
    server = build_server(app, caller_from_request)
    security = None
    if host in LOOPBACK_HOSTS:
        # Refuse requests a web page could make through DNS rebinding.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=[
                "http://127.0.0.1:*",
                "http://localhost:*",
                "http://[::1]:*",
            ],
        )
    manager = StreamableHTTPSessionManager(app=server, security_settings=security)
    backend = TokenBackend(TokenStore(app.engine))
    return Starlette(
        routes=[Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(manager))],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=backend, on_error=_refusal)
        ],
        lifespan=lambda _app: manager.run(),
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; raises ``ConfigurationError``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port or stop what uses it."
        ) from None
    return sock


def serve_http(
    app: Cairnloop,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve MCP over streamable HTTP until interrupted.

    ``on_ready`` receives the endpoint URL once the port accepts connections.
    Raises ``ConfigurationError`` when the token table is missing or the
    port cannot be used.
    """
    TokenStore(app.engine).require_table()
    asgi = build_http_app(app, host=host)
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}{MCP_PATH}"
    config = uvicorn.Config(
        asgi, log_config=None, timeout_graceful_shutdown=5, lifespan="on"
    )
    logger.info(
        "Serving MCP at %s",
        url,
        extra={"event": "mcp_serving", "transport": "http"},
    )
    if on_ready is not None:
        on_ready(url)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
