"""The MCP server itself: ``tools/list`` and ``tools/call`` handlers on the
official SDK's low-level server, and its stdio transport."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from sqlalchemy.exc import OperationalError

from cairnloop_core.errors import CairnloopError, InvalidArgument
from cairnloop_core.mcp.calls import Caller, ToolCalls, UnknownTool
from cairnloop_core.mcp.listing import (
    META_IDEMPOTENCY_KEY,
    STATUS_TOOL,
    StatusInput,
    list_tools,
)

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop

__all__ = ["SERVER_NAME", "CallerResolver", "build_server", "serve_stdio"]

logger = logging.getLogger(__name__)

SERVER_NAME = "cairnloop"
MAX_KEY_LENGTH = 200
INSTRUCTIONS = (
    "Every tool here is governed by Cairnloop. A call becomes a proposal: tools "
    "that run automatically return their result at once; the others wait for "
    f"an operator's approval, and {STATUS_TOOL} reports their status and result "
    "later. To make a retried call count once, put a stable key in the request's "
    f"_meta under {META_IDEMPOTENCY_KEY!r}."
)

CallerResolver = Callable[[ServerRequestContext[Any, Any]], Caller]
"""Finds who is calling from a request's context (configuration or token)."""


def build_server(app: Cairnloop, resolve_caller: CallerResolver) -> Server[Any]:
    """An MCP server offering ``app``'s installed tools to the resolved caller."""
    from cairnloop_core import __version__

    calls = ToolCalls(app)

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        resolve_caller(ctx)
        if params is not None and params.cursor is not None:
            raise MCPError(
                types.INVALID_PARAMS,
                "Unknown cursor; this server lists every tool on one page, so "
                "call tools/list without a cursor.",
            )
        tools = await anyio.to_thread.run_sync(list_tools, app.registry)
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = resolve_caller(ctx)
        key = _idempotency_key(params.meta)
        try:
            return await anyio.to_thread.run_sync(
                calls.call, caller, params.name, params.arguments, key
            )
        except UnknownTool as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        except InvalidArgument as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from None
        except CairnloopError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
        except OperationalError as exc:
            logger.warning(
                "Tool call %r failed on the database: %s",
                params.name,
                type(exc.orig).__name__,
                extra={"event": "mcp_call_failed", "tool": params.name},
            )
            raise MCPError(
                types.INTERNAL_ERROR,
                "Cairnloop could not use its database; nothing was proposed. "
                "Try again later.",
            ) from None
        except Exception as exc:
            logger.exception(
                "Tool call %r failed",
                params.name,
                extra={"event": "mcp_call_failed", "tool": params.name},
            )
            raise MCPError(
                types.INTERNAL_ERROR,
                f"Cairnloop could not handle the call ({type(exc).__name__}); "
                "the server's log has the details.",
            ) from None

    def input_schema(name: str) -> dict[str, Any] | None:
        if name == STATUS_TOOL:
            return StatusInput.model_json_schema()
        loaded = app.registry.get_tool(name)
        return loaded.spec.input_schema() if loaded is not None else None

    server: Server[Any] = Server(
        SERVER_NAME,
        version=__version__,
        title="Cairnloop governed tools",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=input_schema,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
    server.middleware.append(_readable_call_params)
    return server


async def _readable_call_params(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    # The SDK answers malformed tools/call params with a bare "Invalid request
    # parameters"; say which part is wrong before it gets there. The SDK marks
    # server middleware provisional in 2.x, so a minor release may change it.
    if ctx.method == "tools/call" and ctx.request_id is not None:
        problem = _call_params_problem(ctx.params)
        if problem is not None:
            raise MCPError(types.INVALID_PARAMS, problem)
    return await call_next(ctx)


def _call_params_problem(params: Any) -> str | None:
    if not isinstance(params, Mapping):
        return "tools/call needs params holding the tool's name and its arguments."
    if not isinstance(params.get("name"), str) or not params["name"]:
        return "tools/call needs params.name, the name of the tool to call."
    arguments = params.get("arguments")
    if arguments is not None and not isinstance(arguments, Mapping):
        return (
            "tools/call params.arguments must be a JSON object of the tool's "
            f"arguments, not {_json_type(arguments)}."
        )
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "null"


def _idempotency_key(meta: Any) -> str | None:
    if not meta or META_IDEMPOTENCY_KEY not in meta:
        return None
    key = meta[META_IDEMPOTENCY_KEY]
    if not isinstance(key, str) or not key.strip():
        raise MCPError(
            types.INVALID_PARAMS,
            f"_meta {META_IDEMPOTENCY_KEY!r} must be a non-blank string.",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise MCPError(
            types.INVALID_PARAMS,
            f"_meta {META_IDEMPOTENCY_KEY!r} must be at most {MAX_KEY_LENGTH} "
            "characters.",
        )
    return key.strip()


def serve_stdio(app: Cairnloop, caller: Caller) -> None:
    """Serve MCP on this process's stdin and stdout until the client leaves."""
    server = build_server(app, lambda _ctx: caller)

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(
                read_stream, write_stream, server.create_initialization_options()
            )

    logger.info(
        "Serving MCP on stdio as %s",
        caller.actor,
        extra={"event": "mcp_serving", "transport": "stdio"},
    )
    anyio.run(run)
