"""What the MCP specification asks of the protocol, checked in raw JSON-RPC
lines over stdio and with the official client on the 2026-07-28 revision."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_support import CAIRNLOOP, DEADLINE_SECONDS
from mcp_tools import connected, registry_with

from cairnloop_core import Actor, Cairnloop


def _upgraded(url: str) -> None:
    with Cairnloop(url) as app:
        app.upgrade()


class JsonRpcPipe:
    """A server subprocess spoken to one JSON-RPC line at a time."""

    def __init__(self, database_url: str) -> None:
        self.process = subprocess.Popen(
            [CAIRNLOOP, "--database-url", database_url, "mcp", "serve", "--actor", "a"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.buffer = b""

    def send(self, message: dict[str, Any] | bytes) -> None:
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any] | None:
        """The next message, or ``None`` once the server closed its stdout."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + DEADLINE_SECONDS
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, "the server sent nothing before the deadline"
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def close(self) -> tuple[int, dict[str, Any] | None]:
        """Close stdin; return the exit code and anything sent after that."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=DEADLINE_SECONDS)
        rest = self.receive()
        self.process.stdout.close()
        return code, rest


def _request(id_: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return message


def test_json_rpc_over_stdio_follows_the_mcp_specification(sqlite_url: str) -> None:
    _upgraded(sqlite_url)
    pipe = JsonRpcPipe(sqlite_url)

    pipe.send(
        _request(
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "1"},
            },
        )
    )
    initialized = pipe.receive()
    # Notifications, known or not, are never answered: the next line is the
    # answer to the ping.
    pipe.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    pipe.send({"jsonrpc": "2.0", "method": "notifications/cairnloop/unheard_of"})
    pipe.send(_request(2, "ping"))
    ping = pipe.receive()
    pipe.send(_request(3, "cairnloop/unheard_of"))
    unknown = pipe.receive()
    pipe.send(_request(4, "tools/call", {"name": "internal_note", "arguments": "x"}))
    bad_arguments = pipe.receive()
    pipe.send(_request(5, "tools/call", {"arguments": {}}))
    no_name = pipe.receive()
    pipe.send(_request(6, "tools/call", {"name": "refund", "arguments": {}}))
    unknown_tool = pipe.receive()
    # The SDK drops a line that is not JSON without an answer; the connection
    # stays usable.
    pipe.send(b"{this is not json")
    pipe.send(_request(7, "ping"))
    after_garbage = pipe.receive()
    exit_code, rest = pipe.close()

    assert initialized is not None
    assert initialized["result"]["protocolVersion"] == "2025-11-25"
    assert initialized["result"]["serverInfo"]["name"] == "cairnloop"
    assert initialized["result"]["capabilities"]["tools"] == {"listChanged": False}
    assert ping == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert unknown == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {
            "code": -32601,
            "message": "Method not found",
            "data": "cairnloop/unheard_of",
        },
    }
    assert bad_arguments == {
        "jsonrpc": "2.0",
        "id": 4,
        "error": {
            "code": -32602,
            "message": "tools/call params.arguments must be a JSON object of the "
            "tool's arguments, not a string.",
        },
    }
    assert no_name == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {
            "code": -32602,
            "message": "tools/call needs params.name, the name of the tool to call.",
        },
    }
    assert unknown_tool == {
        "jsonrpc": "2.0",
        "id": 6,
        "error": {
            "code": -32602,
            "message": "Unknown tool 'refund'; call tools/list to see the tools "
            "this server offers.",
        },
    }
    assert after_garbage == {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert (exit_code, rest) == (0, None)
    with Cairnloop(sqlite_url) as app:
        assert app.count_by_status() == {}


def test_ping_is_gone_in_the_2026_revision(sqlite_url: str) -> None:
    with Cairnloop(sqlite_url, registry=registry_with()) as app:
        app.upgrade()

        async def ping() -> tuple[str, MCPError]:
            async with connected(app, Actor("bot", "agent")) as client:
                with pytest.raises(MCPError) as refused:
                    await client.session.send_ping()
                return client.protocol_version, refused.value

        version, error = anyio.run(ping)

    assert version == "2026-07-28"
    assert (error.code, error.message, error.data) == (
        -32601,
        "Method not found",
        "ping",
    )
