"""Decisions: approve, reject, defer and reopen, each a compare-and-set."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from governance_support import governed_app, snapshot

from cairnloop_core import (
    Actor,
    Cairnloop,
    DecisionRefused,
    InvalidArgument,
    ProposalNotFound,
    Settings,
)
from cairnloop_core.schema import utcnow

AGENT = Actor("bot-7", "agent")
NOTE = {"conversation_id": "c-1", "content": "Refund promised on the phone."}


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with governed_app(database_url) as instance:
        yield instance


def _pending(app: Cairnloop, actor: Actor = AGENT, **options: Any) -> int:
    result = app.propose("internal_note", actor=actor, input=NOTE, **options)
    assert result.status == "pending"
    return result.proposal.id


def _last_event(app: Cairnloop, proposal_id: int) -> tuple[object, ...]:
    event = app.events(proposal_id)[-1]
    return (
        event.type,
        str(event.actor),
        event.from_status,
        event.to_status,
        event.reason,
    )


def test_approve_with_a_note_records_who_and_why(app: Cairnloop) -> None:
    pid = _pending(app)

    proposal = app.approve(pid, actor="alice", note="  Checked with the customer. ")

    assert proposal.status == "approved"
    assert proposal.decided_by == "alice"
    assert proposal.due_at is not None
    assert _last_event(app, pid) == (
        "approved",
        "operator:alice",
        "pending",
        "approved",
        "Checked with the customer.",
    )


def test_approve_without_a_note_records_no_reason(app: Cairnloop) -> None:
    pid = _pending(app)

    app.approve(pid, actor="alice")

    assert _last_event(app, pid) == (
        "approved",
        "operator:alice",
        "pending",
        "approved",
        None,
    )


def test_reject_records_the_reason_and_ends_the_proposal(app: Cairnloop) -> None:
    pid = _pending(app)

    proposal = app.reject(pid, actor="alice", reason="Duplicate of ticket 12.")

    assert proposal.status == "rejected"
    assert proposal.reason == "Duplicate of ticket 12."
    assert _last_event(app, pid) == (
        "rejected",
        "operator:alice",
        "pending",
        "rejected",
        "Duplicate of ticket 12.",
    )
    assert app.drain() == []


def test_defer_sets_a_proposal_aside_until_a_time(app: Cairnloop) -> None:
    pid = _pending(app)
    until = utcnow() + dt.timedelta(hours=3)

    proposal = app.defer(pid, actor="alice", reason="Wait for billing.", until=until)

    assert proposal.status == "deferred"
    assert proposal.defer_until == until
    assert _last_event(app, pid) == (
        "deferred",
        "operator:alice",
        "pending",
        "deferred",
        "Wait for billing.",
    )
    assert app.events(pid)[-1].data == {"until": until.isoformat()}
    assert [p.status for p in app.inbox()] == ["deferred"]


def test_reopen_returns_a_deferred_proposal_to_pending(app: Cairnloop) -> None:
    pid = _pending(app)
    app.defer(pid, actor="alice", reason="Wait for billing.")

    proposal = app.reopen(pid, actor="bob")

    assert proposal.status == "pending"
    assert proposal.defer_until is None
    assert proposal.decided_by is None
    assert _last_event(app, pid) == (
        "reopened",
        "operator:bob",
        "deferred",
        "pending",
        None,
    )
    assert app.approve(pid, actor="bob").status == "approved"


def test_a_deferred_proposal_can_be_rejected(app: Cairnloop) -> None:
    pid = _pending(app)
    app.defer(pid, actor="alice", reason="Wait for billing.")

    app.reject(pid, actor="bob", reason="Billing said no.")

    assert _last_event(app, pid)[2:] == ("deferred", "rejected", "Billing said no.")


def test_second_decision_on_a_proposal_is_refused_and_changes_nothing(
    app: Cairnloop,
) -> None:
    pid = _pending(app)
    app.approve(pid, actor="alice")
    before = snapshot(app.engine)

    with pytest.raises(DecisionRefused) as caught:
        app.reject(pid, actor="bob", reason="Too late?")

    assert str(caught.value) == (
        f"Proposal {pid} is no longer pending or deferred (it is approved); "
        "it cannot be rejected and nothing was changed."
    )
    assert caught.value.status == "approved"
    assert snapshot(app.engine) == before


def test_second_approval_of_the_same_proposal_is_refused(app: Cairnloop) -> None:
    pid = _pending(app)
    app.approve(pid, actor="alice")

    with pytest.raises(DecisionRefused) as caught:
        app.approve(pid, actor="bob")

    assert str(caught.value) == (
        f"Proposal {pid} is no longer pending (it is approved); "
        "it cannot be approved and nothing was changed."
    )
    assert [e.type for e in app.events(pid)] == ["proposed", "approved"]


def test_reopen_of_a_pending_proposal_is_refused(app: Cairnloop) -> None:
    pid = _pending(app)

    with pytest.raises(DecisionRefused) as caught:
        app.reopen(pid, actor="alice")

    assert str(caught.value) == (
        f"Proposal {pid} is no longer deferred (it is pending); "
        "it cannot be reopened and nothing was changed."
    )


def test_decisions_on_a_refused_proposal_are_refused(app: Cairnloop) -> None:
    result = app.propose("internal_note", actor=AGENT, input={"content": ""})
    pid = result.proposal.id
    before = snapshot(app.engine)

    with pytest.raises(DecisionRefused) as caught:
        app.approve(pid, actor="alice")

    assert str(caught.value) == (
        f"Proposal {pid} is no longer pending (it is needs_input); "
        "it cannot be approved and nothing was changed."
    )
    with pytest.raises(DecisionRefused):
        app.defer(pid, actor="alice", reason="later")
    assert snapshot(app.engine) == before


def test_an_actor_cannot_approve_their_own_proposal(app: Cairnloop) -> None:
    pid = _pending(app, actor=Actor("alice", "operator"))
    before = snapshot(app.engine)

    with pytest.raises(DecisionRefused) as caught:
        app.approve(pid, actor="alice")

    assert str(caught.value) == (
        f"Proposal {pid} was proposed by 'alice', who cannot also approve it; "
        "another operator must decide."
    )
    assert snapshot(app.engine) == before
    assert app.approve(pid, actor="bob").status == "approved"


def test_an_agent_id_cannot_be_approved_by_an_operator_of_the_same_id(
    app: Cairnloop,
) -> None:
    pid = _pending(app, actor=Actor("support-bot", "agent"))
    before = snapshot(app.engine)

    with pytest.raises(DecisionRefused) as caught:
        app.approve(pid, actor=Actor("support-bot", "operator"))

    assert "cannot also approve it" in str(caught.value)
    assert snapshot(app.engine) == before


def test_the_proposer_may_still_reject_or_defer_their_own_proposal(
    app: Cairnloop,
) -> None:
    pid = _pending(app, actor=Actor("alice", "operator"))

    app.defer(pid, actor="alice", reason="I need to check first.")
    app.reject(pid, actor="alice", reason="Proposed by mistake.")

    assert app.get(pid).status == "rejected"


def test_self_approval_is_allowed_when_the_host_turns_the_rule_off(
    database_url: str,
) -> None:
    with governed_app(database_url, Settings(allow_self_approval=True)) as app:
        pid = _pending(app, actor=Actor("alice", "operator"))

        proposal = app.approve(pid, actor="alice")

    assert proposal.status == "approved"
    assert proposal.decided_by == "alice"


@pytest.mark.parametrize(
    "decide",
    [
        lambda app, pid, actor: app.approve(pid, actor=actor),
        lambda app, pid, actor: app.reject(pid, actor=actor, reason="no"),
        lambda app, pid, actor: app.defer(pid, actor=actor, reason="later"),
        lambda app, pid, actor: app.reopen(pid, actor=actor),
    ],
    ids=["approve", "reject", "defer", "reopen"],
)
def test_agents_cannot_decide(
    app: Cairnloop, decide: Callable[[Cairnloop, int, Actor], Any]
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        decide(app, pid, Actor("bot-8", "agent"))

    assert str(caught.value) == (
        "actor: agents cannot decide on proposals; an operator must"
    )
    assert snapshot(app.engine) == before


def test_a_proposal_past_its_ttl_cannot_be_approved(app: Cairnloop) -> None:
    pid = _pending(app, ttl=dt.timedelta(microseconds=1))
    before = snapshot(app.engine)

    with pytest.raises(DecisionRefused) as caught:
        app.approve(pid, actor="alice")

    assert str(caught.value) == (
        f"Proposal {pid} has passed its TTL and can no longer be approved; "
        "propose it again if it is still wanted."
    )
    assert snapshot(app.engine) == before


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (None, "reason: must be non-blank text"),
        ("", "reason: must be non-blank text"),
        (" \n\t", "reason: must be non-blank text"),
        (42, "reason: must be non-blank text"),
        ("x" * 2001, "reason: must be at most 2000 characters (it has 2001)"),
    ],
    ids=["none", "empty", "blank", "number", "too-long"],
)
@pytest.mark.parametrize("verb", ["reject", "defer"])
def test_reject_and_defer_need_a_reason_of_bounded_length(
    app: Cairnloop, verb: str, reason: object, message: str
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        getattr(app, verb)(pid, actor="alice", reason=reason)

    assert str(caught.value) == message
    assert snapshot(app.engine) == before


def test_reason_of_exactly_the_limit_is_accepted(app: Cairnloop) -> None:
    pid = _pending(app)

    proposal = app.reject(pid, actor="alice", reason="x" * 2000)

    assert proposal.reason == "x" * 2000


def test_reason_limit_follows_the_settings(database_url: str) -> None:
    with governed_app(database_url, Settings(max_reason_length=10)) as app:
        pid = _pending(app)
        with pytest.raises(InvalidArgument) as caught:
            app.reject(pid, actor="alice", reason="eleven char")

    assert str(caught.value) == "reason: must be at most 10 characters (it has 11)"


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("", "note: must be non-blank text"),
        ("   ", "note: must be non-blank text"),
        ("n" * 2001, "note: must be at most 2000 characters (it has 2001)"),
    ],
)
def test_approval_note_must_say_something_and_fit(
    app: Cairnloop, note: str, message: str
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        app.approve(pid, actor="alice", note=note)

    assert str(caught.value) == message
    assert snapshot(app.engine) == before


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("tomorrow", "until: must be a timezone-aware date and time"),
        (dt.datetime(2099, 1, 1), "until: must be a timezone-aware date and time"),
        (
            dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
            "until: must be in the future",
        ),
    ],
    ids=["text", "naive", "past"],
)
def test_defer_until_must_be_an_aware_time_in_the_future(
    app: Cairnloop, until: object, message: str
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        app.defer(pid, actor="alice", reason="later", until=until)  # type: ignore[arg-type]

    assert str(caught.value) == message
    assert snapshot(app.engine) == before


@pytest.mark.parametrize("verb", ["approve", "reopen"])
def test_unknown_proposal_id_is_named_in_the_refusal(app: Cairnloop, verb: str) -> None:
    with pytest.raises(ProposalNotFound) as caught:
        getattr(app, verb)(999, actor="alice")

    assert str(caught.value) == (
        "Proposal 999 does not exist; "
        "check the id with 'cairnloop inbox' or 'cairnloop show'."
    )


@pytest.mark.parametrize("bad_id", ["1", 1.0, True, 0, -3, None])
def test_proposal_id_of_the_wrong_type_is_refused(
    app: Cairnloop, bad_id: object
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    for call in (
        lambda: app.approve(bad_id, actor="alice"),  # type: ignore[arg-type]
        lambda: app.reject(bad_id, actor="alice", reason="no"),  # type: ignore[arg-type]
        lambda: app.get(bad_id),  # type: ignore[arg-type]
        lambda: app.events(bad_id),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidArgument) as caught:
            call()
        assert str(caught.value) == "proposal_id: must be a positive whole number"

    assert snapshot(app.engine) == before
    assert app.get(pid).status == "pending"


def test_proposal_id_beyond_any_row_is_not_found(app: Cairnloop) -> None:
    with pytest.raises(ProposalNotFound):
        app.approve(2**64, actor="alice")
    with pytest.raises(ProposalNotFound):
        app.get(2**70)


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        (None, "actor: must be an Actor or an actor id"),
        (7, "actor: must be an Actor or an actor id"),
        ("", "actor: must be a non-blank id"),
        ("a" * 201, "actor: must be at most 200 characters"),
    ],
)
def test_decider_must_be_a_usable_actor(
    app: Cairnloop, actor: object, message: str
) -> None:
    pid = _pending(app)
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as caught:
        app.approve(pid, actor=actor)  # type: ignore[arg-type]

    assert str(caught.value) == message
    assert snapshot(app.engine) == before
