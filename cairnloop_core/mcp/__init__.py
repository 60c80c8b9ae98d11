"""The MCP server: installed governed tools offered to any MCP client."""

from cairnloop_core.mcp.calls import Caller, ToolCalls, UnknownTool
from cairnloop_core.mcp.listing import STATUS_TOOL, describe_tool, list_tools
from cairnloop_core.mcp.server import build_server, serve_stdio
from cairnloop_core.mcp.tokens import (
    IssuedToken,
    McpToken,
    TokenNotFound,
    TokenRefused,
    TokenStore,
)

__all__ = [
    "STATUS_TOOL",
    "Caller",
    "IssuedToken",
    "McpToken",
    "TokenNotFound",
    "TokenRefused",
    "TokenStore",
    "ToolCalls",
    "UnknownTool",
    "build_server",
    "describe_tool",
    "list_tools",
    "serve_stdio",
]
