"""The validation gates of propose, in order, and what each one persists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from governance_support import governed_app, snapshot

from cairnloop_core import SYSTEM, Actor, Cairnloop, InvalidArgument

AGENT = Actor("bot-7", "agent")
TICKET = {"title": "Printer on fire", "priority": 2}


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with governed_app(database_url) as instance:
        yield instance


def _trail(app: Cairnloop, proposal_id: int) -> list[tuple[object, ...]]:
    return [
        (e.type, str(e.actor), e.from_status, e.to_status, e.reason)
        for e in app.events(proposal_id)
    ]


def test_unknown_tool_is_unsupported_and_persists_nothing(app: Cairnloop) -> None:
    before = snapshot(app.engine)

    result = app.propose("teleport", actor=AGENT, input={"to": "mars"})

    assert result.outcome == "unsupported"
    assert result.proposal is None
    assert result.reason == (
        "Tool 'teleport' is not installed; "
        "run 'cairnloop tools' to see the tools you can use."
    )
    assert snapshot(app.engine) == before


def test_invalid_input_is_persisted_as_needs_input_with_an_error_per_field(
    app: Cairnloop,
) -> None:
    result = app.propose(
        "scoped_ticket",
        actor=AGENT,
        input={"title": "", "priority": 9, "colour": "red"},
        scopes=["tickets:write", "tickets:assign"],
    )

    assert result.outcome == "needs_input"
    assert result.errors == [
        {"field": "title", "reason": "String should have at least 1 character"},
        {"field": "priority", "reason": "Input should be less than or equal to 5"},
        {"field": "colour", "reason": "Extra inputs are not permitted"},
    ]
    proposal = app.get(result.proposal.id)
    assert proposal.status == "needs_input"
    assert proposal.errors == result.errors
    assert _trail(app, proposal.id) == [
        (
            "proposed",
            "agent:bot-7",
            None,
            "needs_input",
            "The input is not valid; see the errors for each field.",
        )
    ]


def test_missing_scopes_are_named_in_scope_invalid(app: Cairnloop) -> None:
    result = app.propose(
        "scoped_ticket", actor=AGENT, input=TICKET, scopes=["tickets:write"]
    )

    assert result.outcome == "scope_invalid"
    assert result.reason == "Missing scopes: tickets:assign"
    assert app.get(result.proposal.id).status == "scope_invalid"
    assert _trail(app, result.proposal.id) == [
        (
            "proposed",
            "agent:bot-7",
            None,
            "scope_invalid",
            "Missing scopes: tickets:assign",
        )
    ]


def test_every_missing_scope_is_named(app: Cairnloop) -> None:
    result = app.propose("scoped_ticket", actor=AGENT, input=TICKET)

    assert result.reason == "Missing scopes: tickets:assign, tickets:write"


def test_policy_denial_carries_the_reason_of_the_hook(app: Cairnloop) -> None:
    result = app.propose("closed_desk", actor=AGENT, input=TICKET)

    assert result.outcome == "policy_denied"
    assert result.reason == "the help desk is closed outside office hours"
    assert _trail(app, result.proposal.id) == [
        (
            "proposed",
            "agent:bot-7",
            None,
            "policy_denied",
            "the help desk is closed outside office hours",
        )
    ]


def test_nobody_allowing_is_a_denial_named_no_policy_defined(app: Cairnloop) -> None:
    # internal_note allows agents and operators and abstains for the system.
    result = app.propose(
        "internal_note", actor=SYSTEM, input={"conversation_id": "c", "content": "x"}
    )

    assert result.outcome == "policy_denied"
    assert result.reason == "no_policy_defined"
    assert app.get(result.proposal.id).status == "policy_denied"


def test_destructive_tool_is_blocked_and_nobody_can_approve_it(
    app: Cairnloop,
) -> None:
    result = app.propose("purge_thread", actor=AGENT, input={"order_id": "c-1"})

    assert result.outcome == "blocked"
    assert result.reason == (
        "Tool 'purge_thread' is destructive and always blocked; nobody can approve it."
    )
    assert _trail(app, result.proposal.id) == [
        ("proposed", "agent:bot-7", None, "blocked", result.reason)
    ]
    assert app.inbox() == []


def test_tool_declared_always_block_is_blocked(app: Cairnloop) -> None:
    result = app.propose("frozen_refund", actor=AGENT, input=TICKET)

    assert result.outcome == "blocked"
    assert app.get(result.proposal.id).approval_mode == "always_block"
    assert result.reason == (
        "Tool 'frozen_refund' is high_write and always blocked; nobody can approve it."
    )


def test_gates_run_in_order_input_then_scopes_then_policy_then_block(
    app: Cairnloop,
) -> None:
    # sealed_vault fails every gate it reaches: scopes, policy and block.
    bad_input = app.propose("sealed_vault", actor=AGENT, input={"title": ""})
    no_scope = app.propose("sealed_vault", actor=AGENT, input=TICKET)
    denied = app.propose(
        "sealed_vault", actor=AGENT, input=TICKET, scopes=["vault:open"]
    )

    assert [bad_input.outcome, no_scope.outcome, denied.outcome] == [
        "needs_input",
        "scope_invalid",
        "policy_denied",
    ]
    assert denied.reason == "the vault is sealed"
    statuses = [app.get(r.proposal.id).status for r in (bad_input, no_scope, denied)]
    assert statuses == ["needs_input", "scope_invalid", "policy_denied"]


def test_refused_proposals_run_never_and_wait_for_nobody(app: Cairnloop) -> None:
    app.propose("closed_desk", actor=AGENT, input=TICKET)
    app.propose("purge_thread", actor=AGENT, input={"order_id": "c-1"})

    assert app.inbox() == []
    assert app.drain() == []


def test_approval_required_tool_waits_pending_with_one_event(app: Cairnloop) -> None:
    result = app.propose(
        "scoped_ticket",
        actor=AGENT,
        input=TICKET,
        scopes=["tickets:write", "tickets:assign"],
    )

    assert result.outcome == "created"
    assert result.status == "pending"
    assert result.proposal.due_at is None
    assert _trail(app, result.proposal.id) == [
        ("proposed", "agent:bot-7", None, "pending", None)
    ]
    assert [p.id for p in app.inbox()] == [result.proposal.id]


def test_auto_tool_is_approved_by_the_system_at_once(app: Cairnloop) -> None:
    result = app.propose("lookup_order", actor=AGENT, input={"order_id": "A-1"})

    assert result.outcome == "created"
    proposal = app.get(result.proposal.id)
    assert proposal.status == "approved"
    assert proposal.decided_by == "cairnloop"
    assert proposal.due_at is not None
    assert _trail(app, proposal.id) == [
        ("proposed", "agent:bot-7", None, "pending", None),
        (
            "approved",
            "system:cairnloop",
            "pending",
            "approved",
            "approval mode auto (read_only)",
        ),
    ]
    assert app.inbox() == []
    assert [o.status for o in app.drain()] == ["succeeded"]


def test_every_event_carries_the_input_hash_and_chains_to_the_one_before(
    app: Cairnloop,
) -> None:
    result = app.propose("lookup_order", actor=AGENT, input={"order_id": "A-1"})
    proposal = app.get(result.proposal.id)
    first, second = app.events(proposal.id)

    assert first.input_hash == second.input_hash == proposal.input_hash
    assert [first.seq, second.seq] == [1, 2]
    assert first.hash != second.hash
    assert app.verify_audit() == (2, [])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"input": [1, 2]}, "input: must be a JSON object"),
        ({"input": "text"}, "input: must be a JSON object"),
        (
            {"input": {"title": float("nan")}},
            "input: must hold only JSON values (no NaN, infinity or other objects)",
        ),
        (
            {"input": {"title": object()}},
            "input: must hold only JSON values (no NaN, infinity or other objects)",
        ),
        ({"context": ["a"]}, "context: must be a JSON object"),
        ({"scopes": "tickets:write"}, "scopes: must be a list of scope strings"),
        ({"scopes": 5}, "scopes: must be a list of scope strings"),
        (
            {"scopes": ["tickets:write", ""]},
            "scopes: each scope must be non-blank text",
        ),
        ({"scopes": [7]}, "scopes: each scope must be non-blank text"),
        ({"tool": None}, "tool: must be a tool name"),
        ({"tool": ""}, "tool: must be a tool name"),
        ({"actor": 5}, "actor: must be an Actor or an actor id"),
        ({"actor": " "}, "actor: must be a non-blank id"),
    ],
)
def test_malformed_propose_arguments_are_refused_and_nothing_is_stored(
    app: Cairnloop, arguments: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {
        "tool": "scoped_ticket",
        "actor": AGENT,
        "input": TICKET,
        **arguments,
    }
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        app.propose(
            call.pop("tool"),  # type: ignore[arg-type]
            **call,  # type: ignore[arg-type]
        )

    assert str(caught.value) == message
    assert snapshot(app.engine) == before


def test_scopes_may_be_any_iterable_of_strings(app: Cairnloop) -> None:
    granted = (scope for scope in ["tickets:write", "tickets:assign"])

    result = app.propose("scoped_ticket", actor=AGENT, input=TICKET, scopes=granted)

    assert result.outcome == "created"
    assert app.get(result.proposal.id).scopes == ["tickets:assign", "tickets:write"]


def test_nan_reached_through_coercion_is_a_field_error(app: Cairnloop) -> None:
    result = app.propose(
        "record_reading", actor=AGENT, input={"meter": "m-1", "value": "nan"}
    )

    assert result.outcome == "needs_input"
    assert result.errors == [
        {
            "field": "value",
            "reason": "holds a value JSON cannot store, such as NaN or infinity",
        }
    ]


def test_large_float_input_keeps_its_hash_through_the_database(
    app: Cairnloop,
) -> None:
    # jsonb reads 1e16 back as an integer; the hash must not change with it.
    result = app.propose(
        "record_reading", actor=AGENT, input={"meter": "m-1", "value": 1e16}
    )
    app.approve(result.proposal.id, actor="alice")

    outcomes = app.drain()

    assert [o.status for o in outcomes] == ["succeeded"]
    assert app.verify_audit()[1] == []


@pytest.mark.parametrize("limit", [0, 1001, "10", True, None])
def test_inbox_limit_must_be_a_whole_number_in_range(
    app: Cairnloop, limit: object
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        app.inbox(limit=limit)  # type: ignore[arg-type]

    assert str(caught.value) == "limit: must be a whole number from 1 to 1000"
