"""Act as an agent against `cairnloop mcp serve` with the official MCP client.

Over stdio it starts `cairnloop mcp serve --actor support-bot` in the current
folder; with CAIRNLOOP_MCP_URL set it connects over HTTP and sends the bearer
token from CAIRNLOOP_MCP_TOKEN.

    python mcp_agent.py tools
    python mcp_agent.py describe TOOL
    python mcp_agent.py note CONVERSATION_ID "TEXT"
    python mcp_agent.py status PROPOSAL_ID
"""

from __future__ import annotations

import json
import os
import sys

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult


def connect(http: httpx2.AsyncClient) -> Client:
    url = os.environ.get("CAIRNLOOP_MCP_URL")
    if url:
        return Client(streamable_http_client(url, http_client=http))
    server = StdioServerParameters(
        command="cairnloop", args=["mcp", "serve", "--actor", "support-bot"]
    )
    return Client(server)


def show(result: CallToolResult) -> None:
    print(("isError: " if result.is_error else "") + result.content[0].text)
    print(json.dumps(result.structured_content, indent=2))


async def main(command: str, *args: str) -> None:
    token = os.environ.get("CAIRNLOOP_MCP_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers) as http, connect(http) as client:
        if command == "tools":
            for tool in (await client.list_tools()).tools:
                meta = tool.meta or {}
                print(
                    f"{tool.name}: {tool.title} "
                    f"[{meta.get('cairnloop/risk_tier')}, "
                    f"{meta.get('cairnloop/approval_mode')}]"
                )
        elif command == "describe":
            for tool in (await client.list_tools()).tools:
                if tool.name == args[0]:
                    print(
                        tool.model_dump_json(by_alias=True, exclude_none=True, indent=2)
                    )
        elif command == "note":
            conversation_id, content = args
            show(
                await client.call_tool(
                    "internal_note",
                    {"conversation_id": conversation_id, "content": content},
                )
            )
        elif command == "status":
            show(
                await client.call_tool(
                    "cairnloop_proposal_status", {"proposal_id": int(args[0])}
                )
            )


def first_error(group: BaseExceptionGroup[MCPError]) -> MCPError:
    inner = group.exceptions[0]
    return inner if isinstance(inner, MCPError) else first_error(inner)


if __name__ == "__main__":
    try:
        anyio.run(main, *sys.argv[1:])
    except* MCPError as refused:
        sys.exit(
            f"Refused ({first_error(refused).code}): {first_error(refused).message}"
        )
