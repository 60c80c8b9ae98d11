"""Bearer tokens for the MCP server's HTTP transport: issued, listed, revoked and
checked, with only a hash of each token stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from cairnloop_core.actors import Actor, ActorKind
from cairnloop_core.errors import CairnloopError, ConfigurationError, InvalidArgument
from cairnloop_core.inputs import UNSTORABLE_TEXT, unstorable_text
from cairnloop_core.schema import iso, mcp_tokens, utcnow

__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "McpToken",
    "TokenNotFound",
    "TokenRefused",
    "TokenStore",
    "hash_token",
]

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "clmcp_"
MAX_NAME_LENGTH = 100
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 4
ISSUE_HINT = "ask an operator for a token from 'cairnloop mcp token issue'"


class TokenNotFound(CairnloopError, LookupError):
    """No MCP token has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"No MCP token is named {name!r}; see 'cairnloop mcp token list'."
        )


class TokenRefused(CairnloopError):
    """A bearer token cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class McpToken:
    """One issued token as stored: who it acts as, never the secret itself."""

    id: int
    name: str
    prefix: str
    actor: Actor
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> McpToken:
        m = row._mapping
        return cls(
            id=m["id"],
            name=m["name"],
            prefix=m["token_prefix"],
            actor=Actor(m["actor_id"], m["actor_kind"]),
            scopes=list(m["scopes"] or []),
            created_at=m["created_at"],
            expires_at=m["expires_at"],
            revoked_at=m["revoked_at"],
        )

    def status(self, now: dt.datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "actor": {"id": self.actor.id, "kind": self.actor.kind.value},
            "scopes": self.scopes,
            "status": self.status(),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token and its secret, which is never shown again."""

    token: McpToken
    secret: str


def hash_token(secret: str) -> str:
    """SHA-256 of a token; tokens are long random strings, so no salt is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The MCP tokens in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def require_table(self) -> None:
        """Raise ``ConfigurationError`` when the tokens table does not exist yet."""
        with self.engine.connect() as connection:
            present = inspect(connection).has_table(mcp_tokens.name)
            connection.rollback()
        if not present:
            raise ConfigurationError(
                "the database has no MCP token table yet; "
                "run 'cairnloop db upgrade' first."
            )

    def issue(
        self,
        name: str,
        *,
        actor: Actor,
        scopes: Iterable[str] = (),
        expires_at: dt.datetime | None = None,
    ) -> IssuedToken:
        """Create a token acting as ``actor`` with ``scopes``.

        Raises ``InvalidArgument`` for a blank or taken name, scopes that are
        not strings, or an expiry that is not in the future.
        """
        name = _check_name(name)
        if not isinstance(actor, Actor):
            raise InvalidArgument("actor", "must be an Actor")
        if actor.kind is ActorKind.SYSTEM:
            raise InvalidArgument(
                "actor_kind", "a token acts as an agent or an operator, never as system"
            )
        if isinstance(scopes, str):
            raise InvalidArgument("scopes", "must be a list of scope strings")
        given = list(scopes)
        if not all(isinstance(s, str) for s in given):
            raise InvalidArgument("scopes", "must be a list of scope strings")
        granted = sorted({s.strip() for s in given if s.strip()})
        now = utcnow()
        if expires_at is not None:
            if not isinstance(expires_at, dt.datetime) or expires_at.tzinfo is None:
                raise InvalidArgument("expires_at", "must be a timezone-aware time")
            if expires_at <= now:
                raise InvalidArgument(
                    "expires_at", "must be in the future; give a later time"
                )

        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        values = {
            "name": name,
            "token_hash": hash_token(secret),
            "token_prefix": secret[:SHOWN_PREFIX_LENGTH],
            "actor_id": actor.id,
            "actor_kind": actor.kind.value,
            "scopes": granted,
            "created_at": now,
            "expires_at": expires_at,
        }
        try:
            with self.engine.begin() as connection:
                token_id = connection.execute(
                    insert(mcp_tokens).values(values).returning(mcp_tokens.c.id)
                ).scalar_one()
                row = connection.execute(
                    select(mcp_tokens).where(mcp_tokens.c.id == token_id)
                ).one()
        except IntegrityError:
            raise InvalidArgument(
                "name",
                f"a token named {name!r} already exists (revoked tokens keep "
                "their names); choose another name",
            ) from None
        token = McpToken.from_row(row)
        logger.info(
            "Issued MCP token %r for %s",
            token.name,
            token.actor,
            extra={"event": "mcp_token_issued", "token": token.name},
        )
        return IssuedToken(token, secret)

    def list_tokens(self) -> list[McpToken]:
        """Every token, revoked and expired ones included, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(mcp_tokens).order_by(mcp_tokens.c.id)
            ).all()
            connection.rollback()
        return [McpToken.from_row(row) for row in rows]

    def get(self, name: str) -> McpToken:
        """The token called ``name``; raises ``TokenNotFound``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(mcp_tokens).where(mcp_tokens.c.name == name)
            ).first()
            connection.rollback()
        if row is None:
            raise TokenNotFound(name)
        return McpToken.from_row(row)

    def revoke(self, name: str) -> tuple[McpToken, bool]:
        """Revoke the token called ``name`` at once.

        Returns the token and whether this call revoked it (``False`` when it
        was already revoked). Raises ``TokenNotFound``.
        """
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(mcp_tokens)
                .where(mcp_tokens.c.name == name, mcp_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        token = self.get(name)
        if changed:
            logger.info(
                "Revoked MCP token %r",
                name,
                extra={"event": "mcp_token_revoked", "token": name},
            )
        return token, bool(changed)

    def verify(self, secret: str) -> McpToken:
        """The active token whose secret this is.

        Raises ``TokenRefused`` with a readable reason when the token is
        unknown, revoked or expired.
        """
        with self.engine.connect() as connection:
            row = connection.execute(
                select(mcp_tokens).where(mcp_tokens.c.token_hash == hash_token(secret))
            ).first()
            connection.rollback()
        if row is None:
            raise TokenRefused(f"The bearer token is not valid; {ISSUE_HINT}.")
        token = McpToken.from_row(row)
        if token.revoked_at is not None:
            raise TokenRefused(
                f"The bearer token {token.name!r} was revoked at "
                f"{_moment(token.revoked_at)}; {ISSUE_HINT}."
            )
        if token.expires_at is not None and token.expires_at <= utcnow():
            raise TokenRefused(
                f"The bearer token {token.name!r} expired at "
                f"{_moment(token.expires_at)}; {ISSUE_HINT}."
            )
        return token


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument("name", "must be a non-blank name")
    name = name.strip()
    if unstorable_text(name):
        raise InvalidArgument("name", UNSTORABLE_TEXT)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument("name", f"must be at most {MAX_NAME_LENGTH} characters")
    return name


def _moment(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
