"""``cairnloop mcp serve --transport http`` as a real subprocess on a free
port, driven by the official MCP client and by plain HTTP requests."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.shared.exceptions import MCPError
from mcp_support import bearer, http_client, http_server, run_cli, texts, the_mcp_error
from sqlalchemy import text, update

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.mcp import TokenStore
from cairnloop_core.schema import mcp_tokens, utcnow

LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HINT = "ask an operator for a token from 'cairnloop mcp token issue'."


@contextmanager
def _prepared(url: str) -> Iterator[TokenStore]:
    """An upgraded database with conversation c-1, and its token store."""
    with Cairnloop(url) as app:
        app.upgrade()
        app.create_conversation("c-1")
        yield TokenStore(app.engine)


def test_agent_proposes_over_http_and_follows_the_note_to_its_result(
    database_url: str, tmp_path: Path
) -> None:
    with _prepared(database_url) as store:
        secret = store.issue(
            "support-bot", actor=Actor("support-bot", "agent"), scopes=["notes:write"]
        ).secret

    with http_server(database_url, tmp_path) as url:

        async def propose() -> tuple[Any, Any]:
            async with bearer(secret) as http, http_client(url, http) as client:
                listed = await client.list_tools()
                called = await client.call_tool(
                    "internal_note",
                    {"conversation_id": "c-1", "content": "Customer called back."},
                )
                return listed, called

        listed, called = anyio.run(propose)
        pid = called.structured_content["proposal_id"]

        with Cairnloop(database_url) as app:
            proposal = app.get(pid)
            app.approve(pid, actor="alice")
        worker = run_cli(database_url, "worker", "--once")

        async def follow() -> Any:
            async with bearer(secret) as http, http_client(url, http) as client:
                return await client.call_tool(
                    "cairnloop_proposal_status", {"proposal_id": pid}
                )

        status = anyio.run(follow)

    assert [tool.name for tool in listed.tools] == [
        "internal_note",
        "cairnloop_proposal_status",
    ]
    assert called.is_error is False
    assert called.structured_content["status"] == "pending"
    assert (proposal.actor, proposal.scopes) == (
        Actor("support-bot", "agent"),
        ["notes:write"],
    )
    assert proposal.context == {
        "via": "mcp",
        "transport": "http",
        "token": "support-bot",
    }
    assert (worker.returncode, worker.stdout) == (0, "Handled 1 proposal(s).\n")
    assert texts(status)[0] == f"Proposal {pid} succeeded."
    assert status.structured_content["result"] == {
        "message_id": 1,
        "conversation_id": "c-1",
    }
    with Cairnloop(database_url) as app:
        notes = [m["content"] for m in app.messages("c-1")]
    assert notes == ["Customer called back."]


async def _refusal(url: str, token: str | None) -> MCPError:
    try:
        async with bearer(token) as http, http_client(url, http) as client:
            await client.list_tools()
    except BaseException as exc:
        return the_mcp_error(exc)
    raise AssertionError("the server accepted the request")


def test_requests_without_a_valid_token_get_401_and_learn_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    with _prepared(sqlite_url) as store:
        agent = Actor("bot", "agent")
        store.issue("valid", actor=agent)
        revoked = store.issue("revoked", actor=agent).secret
        store.revoke("revoked")
        expired = store.issue("expired", actor=agent).secret
        with store.engine.begin() as connection:
            connection.execute(
                update(mcp_tokens)
                .where(mcp_tokens.c.name == "expired")
                .values(expires_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
            )
        revoked_at = store.get("revoked").revoked_at
    assert revoked_at is not None
    revoked_text = revoked_at.strftime("%Y-%m-%d %H:%M:%SZ")
    missing = (
        "Missing bearer token: send the header 'Authorization: Bearer <token>'; " + HINT
    )
    expected = {
        None: missing,
        "not-a-token": "The bearer token is not valid; " + HINT,
        revoked: f"The bearer token 'revoked' was revoked at {revoked_text}; " + HINT,
        expired: "The bearer token 'expired' expired at 2026-01-02 03:04:05Z; " + HINT,
    }

    with http_server(sqlite_url, tmp_path) as url:
        responses = {
            token: httpx2.post(
                url,
                json=LIST_TOOLS,
                headers={
                    "Accept": "application/json, text/event-stream",
                    **({"Authorization": f"Bearer {token}"} if token else {}),
                },
            )
            for token in expected
        }
        basic = httpx2.post(url, json=LIST_TOOLS, headers={"Authorization": "Basic x"})
        other_path = httpx2.get(url.replace("/mcp", "/anything"))

        async def refusals() -> dict[str | None, MCPError]:
            return {token: await _refusal(url, token) for token in expected}

        client_errors = anyio.run(refusals)

    for token, message in expected.items():
        response = responses[token]
        assert response.status_code == 401
        assert response.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32010, "message": message},
        }
        assert "internal_note" not in response.text
        assert (client_errors[token].code, client_errors[token].message) == (
            -32010,
            message,
        )
    assert responses[None].headers["www-authenticate"] == 'Bearer realm="cairnloop"'
    assert responses["not-a-token"].headers["www-authenticate"] == (
        'Bearer realm="cairnloop", error="invalid_token", '
        f'error_description="The bearer token is not valid; {HINT}"'
    )
    assert basic.status_code == 401
    assert basic.json()["error"]["message"] == (
        "The Authorization header must be 'Bearer <token>'; " + HINT
    )
    assert other_path.status_code == 401
    with Cairnloop(sqlite_url) as app:
        assert app.count_by_status() == {}


def test_a_token_revoked_during_a_session_is_refused_on_its_next_request(
    sqlite_url: str, tmp_path: Path
) -> None:
    with (
        _prepared(sqlite_url) as store,
        http_server(sqlite_url, tmp_path) as url,
    ):
        secret = store.issue("bot", actor=Actor("bot", "agent")).secret

        async def revoke_midway() -> tuple[list[str], MCPError]:
            async with (
                bearer(secret) as http,
                http_client(url, http, mode="legacy") as client,
            ):
                listed = await client.list_tools()
                await anyio.to_thread.run_sync(store.revoke, "bot")
                try:
                    await client.call_tool(
                        "internal_note", {"conversation_id": "c-1", "content": "x"}
                    )
                except MCPError as exc:
                    return [tool.name for tool in listed.tools], exc
            raise AssertionError("the revoked token was accepted")

        names, refused = anyio.run(revoke_midway)
        revoked_at = store.get("bot").revoked_at

    assert revoked_at is not None and revoked_at <= utcnow()
    assert names == ["internal_note", "cairnloop_proposal_status"]
    assert refused.message == (
        "The bearer token 'bot' was revoked at "
        f"{revoked_at:%Y-%m-%d %H:%M:%SZ}; " + HINT
    )
    with Cairnloop(sqlite_url) as app:
        assert app.count_by_status() == {}


def test_http_serve_refuses_a_port_in_use_with_one_line(sqlite_url: str) -> None:
    with _prepared(sqlite_url), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = run_cli(
            sqlite_url, "mcp", "serve", "--transport", "http", "--port", port
        )

    assert done.returncode == 2
    assert done.stderr == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another --port or stop what uses it.\n"
    )


def test_a_token_check_the_database_cannot_answer_is_503_not_401(
    sqlite_url: str, tmp_path: Path
) -> None:
    with _prepared(sqlite_url) as store, http_server(sqlite_url, tmp_path) as url:
        secret = store.issue("bot", actor=Actor("bot", "agent")).secret
        with store.engine.begin() as connection:
            connection.execute(text("DROP TABLE cairnloop_mcp_tokens"))
        response = httpx2.post(
            url, json=LIST_TOOLS, headers={"Authorization": f"Bearer {secret}"}
        )

    assert response.status_code == 503
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32011,
            "message": "Cairnloop could not check the bearer token because its "
            "database failed; try again later.",
        },
    }
