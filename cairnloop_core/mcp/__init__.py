"""The MCP server: installed governed tools offered to any MCP client.

The server itself lives in ``cairnloop_core.mcp.server`` (stdio) and
``cairnloop_core.mcp.http`` (streamable HTTP); importing this package loads
only the token store, so token commands stay quick.
"""

from cairnloop_core.mcp.tokens import (
    IssuedToken,
    McpToken,
    TokenNotFound,
    TokenRefused,
    TokenStore,
)

__all__ = ["IssuedToken", "McpToken", "TokenNotFound", "TokenRefused", "TokenStore"]
