"""``cairnloop mcp serve`` over stdio, started as a real subprocess by the
official MCP client, and spoken to in raw JSON-RPC lines."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp_support import CAIRNLOOP, DEADLINE_SECONDS, run_cli, stdio_server, texts

from cairnloop_core import Cairnloop


def _upgraded(url: str) -> None:
    with Cairnloop(url) as app:
        app.upgrade()
        app.create_conversation("c-1")


def test_agent_proposes_a_note_over_stdio_and_follows_it_to_its_result(
    sqlite_url: str,
) -> None:
    _upgraded(sqlite_url)
    server = stdio_server(sqlite_url, "--actor", "support-bot")

    async def propose() -> tuple[Any, Any]:
        async with Client(server) as client:
            listed = await client.list_tools()
            called = await client.call_tool(
                "internal_note", {"conversation_id": "c-1", "content": "Refund sent."}
            )
            return listed, called

    listed, called = anyio.run(propose)

    assert [tool.name for tool in listed.tools] == [
        "internal_note",
        "cairnloop_proposal_status",
    ]
    assert called.is_error is False
    assert called.structured_content["status"] == "pending"
    pid = called.structured_content["proposal_id"]
    assert texts(called)[0] == (
        f"Proposal {pid} is waiting for an operator's approval; nothing has run "
        f"yet. Call cairnloop_proposal_status with proposal_id {pid} later to "
        "learn the outcome."
    )

    with Cairnloop(sqlite_url) as app:
        assert app.get(pid).actor.id == "support-bot"
        assert app.get(pid).context == {"via": "mcp", "transport": "stdio"}
        app.approve(pid, actor="alice")
    worker = run_cli(sqlite_url, "worker", "--once")
    assert (worker.returncode, worker.stdout) == (0, "Handled 1 proposal(s).\n")

    async def follow() -> Any:
        async with Client(server) as client:
            return await client.call_tool(
                "cairnloop_proposal_status", {"proposal_id": pid}
            )

    status = anyio.run(follow)

    assert status.is_error is False
    assert texts(status)[0] == f"Proposal {pid} succeeded."
    assert status.structured_content["status"] == "succeeded"
    assert status.structured_content["result"] == {
        "message_id": 1,
        "conversation_id": "c-1",
    }
    with Cairnloop(sqlite_url) as app:
        notes = [(m["role"], m["content"]) for m in app.messages("c-1")]
    assert notes == [("internal_note", "Refund sent.")]


def test_stdio_actor_and_scopes_can_come_from_the_environment(
    sqlite_url: str,
) -> None:
    _upgraded(sqlite_url)
    server = stdio_server(
        sqlite_url,
        env={
            "CAIRNLOOP_MCP_ACTOR": "night-shift",
            "CAIRNLOOP_MCP_ACTOR_KIND": "operator",
            "CAIRNLOOP_MCP_SCOPES": "notes:write tickets:read",
        },
    )

    async def propose() -> Any:
        async with Client(server) as client:
            return await client.call_tool(
                "internal_note", {"conversation_id": "c-1", "content": "hi"}
            )

    called = anyio.run(propose)

    with Cairnloop(sqlite_url) as app:
        proposal = app.get(called.structured_content["proposal_id"])
    assert (proposal.actor.id, proposal.actor.kind.value) == ("night-shift", "operator")
    assert proposal.scopes == ["notes:write", "tickets:read"]


def test_stdio_without_an_actor_is_refused_with_one_line(sqlite_url: str) -> None:
    _upgraded(sqlite_url)

    done = run_cli(sqlite_url, "mcp", "serve", env={"CAIRNLOOP_MCP_ACTOR": ""})

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "Error: give the actor the MCP client acts as with --actor or "
        "CAIRNLOOP_MCP_ACTOR (see 'cairnloop mcp serve --help')\n"
    )


def test_stdio_options_do_not_mix_with_the_http_transport(sqlite_url: str) -> None:
    _upgraded(sqlite_url)

    actor = run_cli(sqlite_url, "mcp", "serve", "--transport", "http", "--actor", "x")
    port = run_cli(sqlite_url, "mcp", "serve", "--actor", "x", "--port", "9000")

    assert (actor.returncode, port.returncode) == (2, 2)
    assert actor.stderr == (
        "Error: --actor applies to stdio; over HTTP each request's bearer token "
        "names the actor and scopes (see 'cairnloop mcp serve --help')\n"
    )
    assert port.stderr == (
        "Error: --port applies to --transport http (see 'cairnloop mcp serve --help')\n"
    )


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


def test_the_documented_agent_example_works_over_stdio(tmp_path: Path) -> None:
    _upgraded(f"sqlite:///{tmp_path / 'cairnloop.db'}")
    example = Path(__file__).parents[1] / "docs" / "examples" / "mcp_agent.py"
    env = {
        **os.environ,
        "PATH": f"{Path(CAIRNLOOP).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("CAIRNLOOP_DATABASE_URL", None)
    env.pop("CAIRNLOOP_MCP_URL", None)

    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(example), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_SECONDS,
            check=False,
        )

    tools = agent("tools")
    note = agent("note", "c-1", "Checked by the example.")

    assert (tools.returncode, tools.stdout) == (
        0,
        "internal_note: Add internal note [low_write, requires_approval]\n"
        "cairnloop_proposal_status: Proposal status [read_only, auto]\n",
    )
    assert note.returncode == 0
    assert note.stdout.startswith(
        "Proposal 1 is waiting for an operator's approval; nothing has run yet."
    )
