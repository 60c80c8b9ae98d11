"""``cairnloop mcp serve`` over stdio, started as a real subprocess by the
official MCP client, and its command-line options."""

from __future__ import annotations

import os
import subprocess
import sys
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
