"""``tools/call``: a call becomes a proposal; auto tools run at once, others
wait, refusals and bad arguments come back as readable errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_support import texts
from mcp_tools import all_test_tools, connected, registry_with
from sqlalchemy import select, text

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.schema import events, proposals

AGENT = Actor("support-bot", "agent")
FOLLOW = (
    "Call cairnloop_proposal_status with proposal_id {0} later to learn the outcome."
)


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with Cairnloop(database_url, registry=registry_with(*all_test_tools())) as app:
        app.upgrade()
        app.create_conversation("c-1")
        yield app


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[Cairnloop]:
    with Cairnloop(sqlite_url, registry=registry_with(*all_test_tools())) as app:
        app.upgrade()
        app.create_conversation("c-1")
        yield app


def _as(
    app: Cairnloop,
    scenario: Callable[[Client], Awaitable[Any]],
    actor: Actor = AGENT,
    scopes: tuple[str, ...] = (),
) -> Any:
    async def run() -> Any:
        async with connected(app, actor, scopes) as client:
            return await scenario(client)

    return anyio.run(run)


def _call(
    app: Cairnloop,
    tool: str,
    arguments: dict[str, Any] | None,
    *,
    actor: Actor = AGENT,
    scopes: tuple[str, ...] = (),
    meta: dict[str, Any] | None = None,
) -> Any:
    return _as(app, lambda c: c.call_tool(tool, arguments, meta=meta), actor, scopes)


def _rows(app: Cairnloop) -> list[tuple[Any, ...]]:
    with app.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(proposals.c.id, proposals.c.status).order_by(proposals.c.id)
            )
        ]


def test_an_auto_tool_runs_at_once_and_its_result_comes_back(
    app: Cairnloop,
) -> None:
    result = _call(app, "echo", {"text": "hello"})

    assert result.is_error is False
    assert texts(result)[0] == "Proposal 1 succeeded."
    assert result.structured_content["status"] == "succeeded"
    assert result.structured_content["outcome"] == "created"
    assert result.structured_content["result"] == {
        "text": "HELLO",
        "by": "agent:support-bot",
    }
    assert [e.type for e in app.events(1)] == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]


def test_an_auto_tool_that_fails_returns_the_reason_as_an_error(
    app: Cairnloop,
) -> None:
    result = _call(app, "order_lookup", {"order_id": "A-17"})

    assert result.is_error is True
    assert texts(result)[0] == "Proposal 1 failed: The shop has no order 'A-17'."
    assert result.structured_content["status"] == "failed"
    assert _rows(app) == [(1, "failed")]


def test_an_auto_tool_told_to_retry_later_answers_with_the_next_attempt(
    sqlite_app: Cairnloop,
) -> None:
    result = _call(sqlite_app, "busy_lookup", {"order_id": "A-17"})

    due_at = sqlite_app.get(1).due_at
    assert due_at is not None
    assert result.is_error is False
    assert texts(result)[0] == (
        f"Proposal 1 is approved; its next attempt is due at "
        f"{due_at:%Y-%m-%d %H:%M:%SZ}. The last attempt failed: The shop is busy. "
        + FOLLOW.format(1)
    )
    assert result.structured_content["attempts"] == 1
    assert _rows(sqlite_app) == [(1, "approved")]


def test_an_approval_required_call_answers_with_the_proposal_and_what_is_next(
    app: Cairnloop,
) -> None:
    result = _call(app, "internal_note", {"conversation_id": "c-1", "content": "hi"})

    assert result.is_error is False
    assert texts(result)[0] == (
        "Proposal 1 is waiting for an operator's approval; nothing has run yet. "
        + FOLLOW.format(1)
    )
    assert result.structured_content["status"] == "pending"
    assert result.structured_content["preview"] == (
        "Adds a 1-word internal note to conversation 'c-1', visible to operators only."
    )
    assert app.messages("c-1") == []


@pytest.mark.parametrize(
    ("tool", "actor", "status", "reason"),
    [
        (
            "wipe_ticket",
            AGENT,
            "blocked",
            "Tool 'wipe_ticket' is destructive and always blocked; nobody can "
            "approve it.",
        ),
        ("close_ticket", AGENT, "scope_invalid", "Missing scopes: tickets:write"),
        (
            "escalate_ticket",
            AGENT,
            "policy_denied",
            "only operators may escalate tickets",
        ),
    ],
)
def test_a_refused_call_is_an_error_with_a_readable_reason(
    sqlite_app: Cairnloop, tool: str, actor: Actor, status: str, reason: str
) -> None:
    result = _call(sqlite_app, tool, {"ticket_id": "T-1"}, actor=actor)

    assert result.is_error is True
    assert texts(result)[0] == (
        f"The call was refused and will not run ({status}): {reason}"
    )
    assert result.structured_content["status"] == status
    assert result.structured_content["reason"] == reason


def test_scopes_and_kind_of_the_caller_decide_what_is_allowed(
    sqlite_app: Cairnloop,
) -> None:
    scoped = _call(
        sqlite_app, "close_ticket", {"ticket_id": "T-1"}, scopes=("tickets:write",)
    )
    operator = _call(
        sqlite_app,
        "escalate_ticket",
        {"ticket_id": "T-1"},
        actor=Actor("alice", "operator"),
    )

    assert (scoped.is_error, scoped.structured_content["status"]) == (False, "pending")
    assert (operator.is_error, operator.structured_content["status"]) == (
        False,
        "pending",
    )


def test_invalid_arguments_come_back_per_field(sqlite_app: Cairnloop) -> None:
    result = _call(
        sqlite_app,
        "internal_note",
        {"conversation_id": 7, "content": "x" * 5001, "urgent": True},
    )
    missing = _call(sqlite_app, "internal_note", None)

    assert result.is_error is True
    assert texts(result)[0] == (
        "The arguments for internal_note are not valid; fix them and call again:\n"
        "- conversation_id: Input should be a valid string\n"
        "- content: String should have at most 5000 characters\n"
        "- urgent: Extra inputs are not permitted"
    )
    assert result.structured_content["errors"] == [
        {"field": "conversation_id", "reason": "Input should be a valid string"},
        {"field": "content", "reason": "String should have at most 5000 characters"},
        {"field": "urgent", "reason": "Extra inputs are not permitted"},
    ]
    assert texts(missing)[0] == (
        "The arguments for internal_note are not valid; fix them and call again:\n"
        "- conversation_id: Field required\n"
        "- content: Field required"
    )
    # Governance records refused input as needs_input; nothing can run it.
    assert _rows(sqlite_app) == [(1, "needs_input"), (2, "needs_input")]


def test_the_idempotency_key_in_meta_makes_a_retried_call_count_once(
    app: Cairnloop,
) -> None:
    note = {"conversation_id": "c-1", "content": "once"}
    key = {"cairnloop/idempotency_key": "call-7f3a"}

    async def retry(client: Client) -> list[Any]:
        first = await client.call_tool("internal_note", note, meta=key)
        again = await client.call_tool("internal_note", note, meta=key)
        other = await client.call_tool(
            "internal_note", {**note, "content": "other"}, meta=key
        )
        return [first, again, other]

    first, again, other = _as(app, retry)

    assert first.structured_content["outcome"] == "created"
    assert again.structured_content["outcome"] == "duplicate"
    assert texts(again)[0] == (
        "This call was already made as proposal 1. Proposal 1 is waiting for an "
        "operator's approval; nothing has run yet. " + FOLLOW.format(1)
    )
    assert other.is_error is True
    assert texts(other)[0] == (
        "The idempotency key 'call-7f3a' was already used for a different call; "
        "use a new key for a new call. Nothing was proposed."
    )
    assert _rows(app) == [(1, "pending")]
    assert app.get(1).idempotency_key == "call-7f3a"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (17, "_meta 'cairnloop/idempotency_key' must be a non-blank string."),
        ("  ", "_meta 'cairnloop/idempotency_key' must be a non-blank string."),
        (
            "k" * 201,
            "_meta 'cairnloop/idempotency_key' must be at most 200 characters.",
        ),
    ],
)
def test_a_malformed_idempotency_key_is_a_protocol_error_and_records_nothing(
    sqlite_app: Cairnloop, key: Any, message: str
) -> None:
    async def call(client: Client) -> MCPError:
        with pytest.raises(MCPError) as refused:
            await client.call_tool(
                "internal_note",
                {"conversation_id": "c-1", "content": "x"},
                meta={"cairnloop/idempotency_key": key},
            )
        return refused.value

    error = _as(sqlite_app, call)

    assert (error.code, error.message) == (-32602, message)
    assert _rows(sqlite_app) == []


def test_an_unknown_tool_is_a_protocol_error_and_records_nothing(
    sqlite_app: Cairnloop,
) -> None:
    async def call(client: Client) -> MCPError:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("refund_order", {"order_id": "A-1"})
        return refused.value

    error = _as(sqlite_app, call)

    assert (error.code, error.message) == (
        -32602,
        "Unknown tool 'refund_order'; call tools/list to see the tools this "
        "server offers.",
    )
    assert _rows(sqlite_app) == []


def test_the_status_tool_follows_a_proposal_through_its_decisions(
    sqlite_app: Cairnloop,
) -> None:
    app = sqlite_app
    for content in ("first", "second"):
        _call(app, "internal_note", {"conversation_id": "c-1", "content": content})

    def status(pid: int) -> Any:
        return _call(app, "cairnloop_proposal_status", {"proposal_id": pid})

    app.defer(1, actor="alice", reason="ask the customer first")
    deferred = status(1)
    app.reject(2, actor="alice", reason="duplicate of the first note")
    rejected = status(2)
    app.reopen(1, actor="alice")
    app.approve(1, actor="alice")
    approved = status(1)
    app.drain()
    succeeded = status(1)

    assert texts(deferred)[0] == (
        "Proposal 1 was set aside by an operator; nothing has run yet. "
        + FOLLOW.format(1)
    )
    assert (rejected.is_error, texts(rejected)[0]) == (
        False,
        "Proposal 2 was rejected by an operator: duplicate of the first note",
    )
    assert texts(approved)[0] == (
        "Proposal 1 is approved and queued; a Cairnloop worker will run it. "
        + FOLLOW.format(1)
    )
    assert texts(succeeded)[0] == "Proposal 1 succeeded."
    assert succeeded.structured_content["result"] == {
        "message_id": 1,
        "conversation_id": "c-1",
    }
    assert "outcome" not in succeeded.structured_content


def test_the_status_tool_answers_only_for_the_callers_own_proposals(
    sqlite_app: Cairnloop,
) -> None:
    app = sqlite_app
    _call(app, "internal_note", {"conversation_id": "c-1", "content": "mine"})
    with app.engine.connect() as connection:
        before = connection.execute(select(events.c.id)).all()

    others = _call(
        app,
        "cairnloop_proposal_status",
        {"proposal_id": 1},
        actor=Actor("another-bot", "agent"),
    )
    missing = _call(app, "cairnloop_proposal_status", {"proposal_id": 99})

    for result, pid in ((others, 1), (missing, 99)):
        assert result.is_error is True
        assert texts(result)[0] == (
            f"Proposal {pid} does not exist or was proposed by someone else; you "
            "can follow only your own proposals."
        )
    with app.engine.connect() as connection:
        assert connection.execute(select(events.c.id)).all() == before


@pytest.mark.parametrize(
    ("arguments", "errors"),
    [
        ({}, ["- proposal_id: Field required"]),
        (
            {"proposal_id": "seven"},
            [
                "- proposal_id: Input should be a valid integer, unable to parse "
                "string as an integer"
            ],
        ),
        (
            {"proposal_id": 0},
            ["- proposal_id: Input should be greater than or equal to 1"],
        ),
        (
            {"proposal_id": 1, "verbose": True},
            ["- verbose: Extra inputs are not permitted"],
        ),
    ],
)
def test_the_status_tool_explains_bad_arguments_per_field(
    sqlite_app: Cairnloop, arguments: dict[str, Any], errors: list[str]
) -> None:
    result = _call(sqlite_app, "cairnloop_proposal_status", arguments)

    assert result.is_error is True
    assert texts(result)[0] == "\n".join(
        [
            "The arguments for cairnloop_proposal_status are not valid; fix them "
            "and call again:",
            *errors,
        ]
    )
    assert _rows(sqlite_app) == []


def test_a_database_failure_is_reported_without_internals(
    sqlite_app: Cairnloop,
) -> None:
    with sqlite_app.engine.begin() as connection:
        connection.execute(text("DROP TABLE cairnloop_events"))

    async def call(client: Client) -> MCPError:
        with pytest.raises(MCPError) as refused:
            await client.call_tool(
                "internal_note", {"conversation_id": "c-1", "content": "x"}
            )
        return refused.value

    error = _as(sqlite_app, call)

    assert (error.code, error.message) == (
        -32603,
        "Cairnloop could not use its database; nothing was proposed. Try again later.",
    )
    assert _rows(sqlite_app) == []
