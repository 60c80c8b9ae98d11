"""Bearer tokens of the MCP HTTP transport: stored hashed, issued, listed,
revoked and checked, in the library and through ``cairnloop mcp token``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator

import pytest
from mcp_support import run_cli
from sqlalchemy import Engine, inspect, select, update

from cairnloop_core import Actor, Cairnloop, InvalidArgument
from cairnloop_core.database import current_revision, downgrade_schema
from cairnloop_core.mcp import TokenNotFound, TokenRefused, TokenStore
from cairnloop_core.schema import mcp_tokens, utcnow

HINT = "ask an operator for a token from 'cairnloop mcp token issue'."


@pytest.fixture
def store(app: Cairnloop) -> Iterator[TokenStore]:
    yield TokenStore(app.engine)


def _rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(mcp_tokens)).mappings()]


def test_an_issued_token_is_stored_only_as_its_hash(store: TokenStore) -> None:
    issued = store.issue(
        "support-bot",
        actor=Actor("support-bot", "agent"),
        scopes=["tickets:read", "notes:write", "notes:write"],
    )

    [row] = _rows(store.engine)
    checked = store.verify(issued.secret)

    assert issued.secret.startswith("clmcp_") and len(issued.secret) > 40
    assert issued.secret not in json.dumps(row, default=str)
    assert row["token_hash"] == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert row["token_prefix"] == issued.secret[:10]
    assert (checked.name, checked.actor) == (
        "support-bot",
        Actor("support-bot", "agent"),
    )
    assert checked.scopes == ["notes:write", "tickets:read"]
    assert checked.status() == "active"


def test_unknown_revoked_and_expired_tokens_are_refused_with_the_reason(
    store: TokenStore,
) -> None:
    agent = Actor("bot", "agent")
    revoked = store.issue("revoked", actor=agent).secret
    store.revoke("revoked")
    expired = store.issue(
        "expired", actor=agent, expires_at=utcnow() + dt.timedelta(days=1)
    ).secret
    with store.engine.begin() as connection:
        connection.execute(
            update(mcp_tokens)
            .where(mcp_tokens.c.name == "expired")
            .values(expires_at=dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
        )
    revoked_at = store.get("revoked").revoked_at
    assert revoked_at is not None

    with pytest.raises(TokenRefused) as unknown:
        store.verify("clmcp_never-issued")
    with pytest.raises(TokenRefused) as was_revoked:
        store.verify(revoked)
    with pytest.raises(TokenRefused) as has_expired:
        store.verify(expired)

    assert str(unknown.value) == "The bearer token is not valid; " + HINT
    assert str(was_revoked.value) == (
        f"The bearer token 'revoked' was revoked at {revoked_at:%Y-%m-%d %H:%M:%SZ}; "
        + HINT
    )
    assert str(has_expired.value) == (
        "The bearer token 'expired' expired at 2026-03-01 12:00:00Z; " + HINT
    )
    assert [t.status() for t in store.list_tokens()] == ["revoked", "expired"]


@pytest.mark.parametrize(
    ("name", "actor", "options", "message"),
    [
        ("  ", Actor("bot", "agent"), {}, "name: must be a non-blank name"),
        ("x" * 101, Actor("bot", "agent"), {}, "name: must be at most 100 characters"),
        (
            "taken",
            Actor("bot", "agent"),
            {},
            "name: a token named 'taken' already exists (revoked tokens keep their "
            "names); choose another name",
        ),
        (
            "sys",
            Actor("cairnloop", "system"),
            {},
            "actor_kind: a token acts as an agent or an operator, never as system",
        ),
        (
            "str-scopes",
            Actor("bot", "agent"),
            {"scopes": "notes:write"},
            "scopes: must be a list of scope strings",
        ),
        (
            "past",
            Actor("bot", "agent"),
            {"expires_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
            "expires_at: must be in the future; give a later time",
        ),
        (
            "naive",
            Actor("bot", "agent"),
            {"expires_at": dt.datetime(2099, 1, 1)},
            "expires_at: must be a timezone-aware time",
        ),
    ],
)
def test_issue_refuses_bad_values_and_leaves_the_table_unchanged(
    store: TokenStore,
    name: str,
    actor: Actor,
    options: dict[str, object],
    message: str,
) -> None:
    store.issue("taken", actor=Actor("bot", "agent"))
    before = _rows(store.engine)

    with pytest.raises(InvalidArgument) as refused:
        store.issue(name, actor=actor, **options)  # type: ignore[arg-type]

    assert str(refused.value) == message
    assert _rows(store.engine) == before


def test_revoking_twice_is_harmless_and_an_unknown_name_is_refused(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cairnloop_core.mcp.tokens")
    store.issue("bot", actor=Actor("bot", "agent"))

    first, first_changed = store.revoke("bot")
    again, again_changed = store.revoke("bot")
    with pytest.raises(TokenNotFound) as unknown:
        store.revoke("ghost")

    assert [(r.event, r.getMessage()) for r in caplog.records] == [
        ("mcp_token_issued", "Issued MCP token 'bot' for agent:bot"),
        ("mcp_token_revoked", "Revoked MCP token 'bot'"),
    ]
    assert (first_changed, again_changed) == (True, False)
    assert first.revoked_at == again.revoked_at is not None
    assert str(unknown.value) == (
        "No MCP token is named 'ghost'; see 'cairnloop mcp token list'."
    )


def test_migration_0002_adds_and_removes_the_token_table(app: Cairnloop) -> None:
    assert current_revision(app.engine) == "0002"

    downgrade_schema(app.engine, "0001")
    without = inspect(app.engine).has_table("cairnloop_mcp_tokens")
    app.upgrade()

    assert without is False
    assert inspect(app.engine).has_table("cairnloop_mcp_tokens")
    assert current_revision(app.engine) == "0002"


def test_token_commands_issue_list_and_revoke(sqlite_url: str) -> None:
    with Cairnloop(sqlite_url) as app:
        app.upgrade()

    issued = run_cli(
        sqlite_url,
        *("mcp", "token", "issue", "support-bot", "--actor", "support-bot"),
        *("--scope", "notes:write", "--expires", "2099-01-01T00:00Z"),
    )
    listed = run_cli(sqlite_url, "mcp", "token", "list")
    revoked = run_cli(sqlite_url, "mcp", "token", "revoke", "support-bot")
    again = run_cli(sqlite_url, "mcp", "token", "revoke", "support-bot")
    as_json = run_cli(sqlite_url, "mcp", "token", "list", "--json")

    secret = issued.stdout.strip()
    assert issued.returncode == 0
    assert issued.stdout == secret + "\n" and secret.startswith("clmcp_")
    assert issued.stderr == (
        "Issued token 'support-bot' acting as agent:support-bot, scopes: "
        "notes:write, expires: 2099-01-01 00:00:00Z.\n"
        "It is shown only this once; store it now.\n"
    )
    assert listed.stdout == (
        "NAME                 ACTOR                        STATUS   EXPIRES"
        "               SCOPES\n"
        "support-bot          agent:support-bot            active   "
        "2099-01-01 00:00:00Z  notes:write\n"
    )
    assert revoked.stdout == (
        "Token 'support-bot' is revoked; requests with it are refused.\n"
    )
    [shown] = json.loads(as_json.stdout)
    assert again.stdout == (
        f"Token 'support-bot' was already revoked at "
        f"{dt.datetime.fromisoformat(shown['revoked_at']):%Y-%m-%d %H:%M:%SZ}.\n"
    )
    assert {
        k: v for k, v in shown.items() if k not in ("created_at", "revoked_at")
    } == {
        "name": "support-bot",
        "prefix": secret[:10],
        "actor": {"id": "support-bot", "kind": "agent"},
        "scopes": ["notes:write"],
        "status": "revoked",
        "expires_at": "2099-01-01T00:00:00+00:00",
    }
    assert secret not in as_json.stdout + listed.stdout
    assert [p.returncode for p in (listed, revoked, again, as_json)] == [0, 0, 0, 0]


def test_token_commands_refuse_bad_input_with_one_line(sqlite_url: str) -> None:
    with Cairnloop(sqlite_url) as app:
        app.upgrade()
        TokenStore(app.engine).issue("taken", actor=Actor("bot", "agent"))

    ghost = run_cli(sqlite_url, "mcp", "token", "revoke", "ghost")
    past = run_cli(
        sqlite_url,
        *("mcp", "token", "issue", "late", "--actor", "bot"),
        *("--expires", "2020-01-01T00:00Z"),
    )
    taken = run_cli(sqlite_url, "mcp", "token", "issue", "taken", "--actor", "bot")
    with Cairnloop(sqlite_url) as app:
        names = [t.name for t in TokenStore(app.engine).list_tokens()]
        downgrade_schema(app.engine, "0001")
    no_table = run_cli(sqlite_url, "mcp", "token", "list")

    assert [p.returncode for p in (ghost, past, taken, no_table)] == [2, 2, 2, 2]
    assert ghost.stderr == (
        "Error: No MCP token is named 'ghost'; see 'cairnloop mcp token list'.\n"
    )
    assert (
        past.stderr == "Error: expires_at: must be in the future; give a later time\n"
    )
    assert taken.stderr == (
        "Error: name: a token named 'taken' already exists (revoked tokens keep "
        "their names); choose another name\n"
    )
    assert no_table.stderr == (
        "Error: the database has no MCP token table yet; run 'cairnloop db "
        "upgrade' first.\n"
    )
    assert [p.stdout for p in (ghost, past, taken, no_table)] == ["", "", "", ""]
    assert names == ["taken"]
