"""Idempotency: a caller's key dedupes forever, a derived key only while live."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from governance_support import governed_app, snapshot
from sqlalchemy import func, select

from cairnloop_core import Actor, Cairnloop, IdempotencyConflict, InvalidArgument
from cairnloop_core.schema import proposals

AGENT = Actor("bot-7", "agent")
NOTE = {"conversation_id": "c-1", "content": "Customer called twice."}


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with governed_app(database_url) as instance:
        instance.create_conversation("c-1")
        yield instance


def _rows(app: Cairnloop) -> int:
    with app.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(proposals)).scalar()


def test_caller_key_answers_a_repeat_with_the_first_proposal(app: Cairnloop) -> None:
    first = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1"
    )
    again = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1"
    )

    assert (first.outcome, again.outcome) == ("created", "duplicate")
    assert again.proposal.id == first.proposal.id
    assert again.status == "pending"
    assert _rows(app) == 1
    assert [e.type for e in app.events(first.proposal.id)] == ["proposed"]


@pytest.mark.parametrize("end", ["rejected", "expired", "succeeded"])
def test_caller_key_dedupes_even_after_the_proposal_ended(
    app: Cairnloop, end: str
) -> None:
    first = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1"
    )
    _finish(app, first.proposal.id, end)

    again = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1"
    )

    assert again.outcome == "duplicate"
    assert again.proposal.id == first.proposal.id
    assert again.status == end
    assert _rows(app) == 1


def test_caller_key_dedupes_a_refused_call_and_stays_refused(app: Cairnloop) -> None:
    first = app.propose(
        "internal_note", actor=AGENT, input={"content": ""}, idempotency_key="k"
    )
    again = app.propose(
        "internal_note", actor=AGENT, input={"content": ""}, idempotency_key="k"
    )

    assert first.outcome == "needs_input"
    assert again.outcome == "duplicate"
    assert again.status == "needs_input"
    assert again.refused
    assert again.errors == first.errors
    assert _rows(app) == 1


def test_caller_key_reused_with_other_input_is_a_conflict(app: Cairnloop) -> None:
    first = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1"
    )
    before = snapshot(app.engine)

    with pytest.raises(IdempotencyConflict) as caught:
        app.propose(
            "internal_note",
            actor=AGENT,
            input={**NOTE, "content": "Something else."},
            idempotency_key="call-1",
        )

    assert str(caught.value) == (
        f"Idempotency key 'call-1' was already used by proposal {first.proposal.id} "
        "with a different tool, actor or input; use a new key for a new call."
    )
    assert caught.value.proposal_id == first.proposal.id
    assert snapshot(app.engine) == before


def test_caller_key_reused_by_another_actor_or_tool_is_a_conflict(
    app: Cairnloop,
) -> None:
    app.propose("internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1")
    before = snapshot(app.engine)

    with pytest.raises(IdempotencyConflict):
        app.propose(
            "internal_note",
            actor=Actor("bot-8", "agent"),
            input=NOTE,
            idempotency_key="call-1",
        )
    with pytest.raises(IdempotencyConflict):
        app.propose(
            "lookup_order",
            actor=AGENT,
            input={"order_id": "A-1"},
            idempotency_key="call-1",
        )
    assert snapshot(app.engine) == before


def test_same_call_without_key_is_a_duplicate_while_the_first_is_live(
    app: Cairnloop,
) -> None:
    first = app.propose("internal_note", actor=AGENT, input=NOTE)
    again = app.propose("internal_note", actor=AGENT, input=NOTE)
    app.defer(first.proposal.id, actor="alice", reason="ask the customer")
    deferred = app.propose("internal_note", actor=AGENT, input=NOTE)
    app.reopen(first.proposal.id, actor="alice")
    app.approve(first.proposal.id, actor="alice")
    approved = app.propose("internal_note", actor=AGENT, input=NOTE)

    assert first.outcome == "created"
    assert [again.outcome, deferred.outcome, approved.outcome] == ["duplicate"] * 3
    assert {again.proposal.id, deferred.proposal.id, approved.proposal.id} == {
        first.proposal.id
    }
    assert approved.status == "approved"
    assert _rows(app) == 1


def test_derived_key_ignores_whitespace_the_input_model_strips(
    app: Cairnloop,
) -> None:
    first = app.propose("internal_note", actor=AGENT, input=NOTE)
    padded = {"conversation_id": " c-1 ", "content": NOTE["content"] + "  "}

    again = app.propose("internal_note", actor=AGENT, input=padded)

    assert again.outcome == "duplicate"
    assert again.proposal.id == first.proposal.id


@pytest.mark.parametrize("end", ["rejected", "expired", "succeeded"])
def test_same_call_without_key_is_proposed_anew_once_the_first_ended(
    app: Cairnloop, end: str
) -> None:
    first = app.propose("internal_note", actor=AGENT, input=NOTE)
    _finish(app, first.proposal.id, end)

    again = app.propose("internal_note", actor=AGENT, input=NOTE)

    assert again.outcome == "created"
    assert again.proposal.id != first.proposal.id
    assert app.get(first.proposal.id).status == end
    assert _rows(app) == 2


def test_same_input_from_another_actor_is_a_separate_proposal(
    app: Cairnloop,
) -> None:
    first = app.propose("internal_note", actor=AGENT, input=NOTE)
    other = app.propose("internal_note", actor=Actor("bot-8", "agent"), input=NOTE)

    assert other.outcome == "created"
    assert other.proposal.id != first.proposal.id


def test_refused_calls_without_key_are_each_recorded(app: Cairnloop) -> None:
    first = app.propose("internal_note", actor=AGENT, input={"content": ""})
    again = app.propose("internal_note", actor=AGENT, input={"content": ""})

    assert (first.outcome, again.outcome) == ("needs_input", "needs_input")
    assert first.proposal.id != again.proposal.id


def test_keyed_and_unkeyed_calls_do_not_dedupe_each_other(app: Cairnloop) -> None:
    keyed = app.propose("internal_note", actor=AGENT, input=NOTE, idempotency_key="k")
    unkeyed = app.propose("internal_note", actor=AGENT, input=NOTE)
    other_key = app.propose(
        "internal_note", actor=AGENT, input=NOTE, idempotency_key="k2"
    )

    assert [keyed.outcome, unkeyed.outcome, other_key.outcome] == ["created"] * 3
    assert _rows(app) == 3


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "idempotency_key: must be non-blank text"),
        ("   ", "idempotency_key: must be non-blank text"),
        (17, "idempotency_key: must be non-blank text"),
        ("k" * 201, "idempotency_key: must be at most 200 characters (it has 201)"),
    ],
)
def test_unusable_idempotency_key_is_refused_and_nothing_is_written(
    app: Cairnloop, key: object, message: str
) -> None:
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        app.propose(
            "internal_note",
            actor=AGENT,
            input=NOTE,
            idempotency_key=key,  # type: ignore[arg-type]
        )

    assert str(caught.value) == message
    assert snapshot(app.engine) == before


def _finish(app: Cairnloop, proposal_id: int, end: str) -> None:
    if end == "rejected":
        app.reject(proposal_id, actor="alice", reason="not needed")
    elif end == "expired":
        app.expire_due(now=app.get(proposal_id).expires_at + dt.timedelta(seconds=1))
    else:
        app.approve(proposal_id, actor="alice")
        assert [o.status for o in app.drain()] == ["succeeded"]
    assert app.get(proposal_id).status == end
