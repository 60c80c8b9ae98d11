"""TTL: the 48-hour default, global and per-call settings, and the expiry sweep."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from governance_support import governed_app, snapshot

from cairnloop_core import Actor, Cairnloop, InvalidArgument, Settings
from cairnloop_core.schema import utcnow

AGENT = Actor("bot-7", "agent")
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with governed_app(database_url) as instance:
        yield instance


def _propose(app: Cairnloop, content: str = "note", **options: object) -> int:
    result = app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "c-1", "content": content},
        **options,  # type: ignore[arg-type]
    )
    return result.proposal.id


def _lifetime(app: Cairnloop, proposal_id: int) -> dt.timedelta:
    proposal = app.get(proposal_id)
    return proposal.expires_at - proposal.created_at


def test_ttl_defaults_to_48_hours(app: Cairnloop) -> None:
    assert _lifetime(app, _propose(app)) == dt.timedelta(hours=48)


def test_ttl_is_set_globally_in_the_settings(database_url: str) -> None:
    with governed_app(database_url, Settings(ttl=2 * HOUR)) as app:
        assert _lifetime(app, _propose(app)) == 2 * HOUR


def test_ttl_given_with_a_call_wins_over_the_settings(database_url: str) -> None:
    with governed_app(database_url, Settings(ttl=2 * HOUR)) as app:
        assert _lifetime(app, _propose(app, ttl=dt.timedelta(minutes=5))) == (
            dt.timedelta(minutes=5)
        )


def test_refused_and_auto_proposals_get_the_ttl_too(app: Cairnloop) -> None:
    refused = app.propose("internal_note", actor=AGENT, input={})
    auto = app.propose(
        "lookup_order", actor=AGENT, input={"order_id": "A-1"}, ttl=3 * HOUR
    )

    assert _lifetime(app, refused.proposal.id) == dt.timedelta(hours=48)
    assert _lifetime(app, auto.proposal.id) == 3 * HOUR


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (dt.timedelta(0), "ttl: must be a positive duration"),
        (-HOUR, "ttl: must be a positive duration"),
        (3600, "ttl: must be a positive duration"),
        ("2h", "ttl: must be a positive duration"),
        (dt.timedelta(days=3651), "ttl: must be at most 3650 days"),
    ],
    ids=["zero", "negative", "seconds-number", "text", "too-long"],
)
def test_unusable_ttl_is_refused_per_call_and_in_the_settings(
    app: Cairnloop, ttl: object, message: str
) -> None:
    before = snapshot(app.engine)

    with pytest.raises(InvalidArgument) as per_call:
        _propose(app, ttl=ttl)
    with pytest.raises(InvalidArgument) as global_:
        Settings(ttl=ttl)  # type: ignore[arg-type]

    assert str(per_call.value) == str(global_.value) == message
    assert snapshot(app.engine) == before


@pytest.mark.parametrize(
    "field", ["poll_seconds", "lease_margin_seconds", "stop_grace_seconds"]
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, 86401.0])
def test_worker_waits_must_be_finite_and_at_most_a_day(
    field: str, value: float
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        Settings(**{field: value})

    assert str(refused.value) == f"{field}: must be a number of seconds up to 86400"
    assert getattr(Settings(**{field: 86400.0}), field) == 86400.0


def test_sweep_expires_a_pending_proposal_whose_ttl_passed(app: Cairnloop) -> None:
    pid = _propose(app, ttl=HOUR)
    later = utcnow() + 2 * HOUR

    changed = app.expire_due(now=later)

    proposal = app.get(pid)
    assert changed == 1
    assert proposal.status == "expired"
    assert proposal.reason == "The TTL passed before a decision."
    last = app.events(pid)[-1]
    assert (last.type, str(last.actor), last.from_status, last.to_status) == (
        "expired",
        "system:cairnloop",
        "pending",
        "expired",
    )
    assert last.reason == "the TTL passed"
    assert app.inbox() == []


def test_sweep_expires_a_deferred_proposal_whose_ttl_passed(app: Cairnloop) -> None:
    pid = _propose(app, ttl=HOUR)
    app.defer(pid, actor="alice", reason="later", until=utcnow() + 5 * HOUR)

    changed = app.expire_due(now=utcnow() + 2 * HOUR)

    assert changed == 1
    assert app.get(pid).status == "expired"
    assert app.events(pid)[-1].from_status == "deferred"


def test_sweep_returns_a_deferred_proposal_to_pending_when_its_time_comes(
    app: Cairnloop,
) -> None:
    pid = _propose(app)
    app.defer(pid, actor="alice", reason="after lunch", until=utcnow() + HOUR)

    changed = app.expire_due(now=utcnow() + 2 * HOUR)

    proposal = app.get(pid)
    assert changed == 1
    assert proposal.status == "pending"
    assert proposal.defer_until is None
    assert proposal.decided_by is None
    last = app.events(pid)[-1]
    assert (last.type, str(last.actor), last.from_status, last.to_status) == (
        "reopened",
        "system:cairnloop",
        "deferred",
        "pending",
    )
    assert last.reason == "the deferral ended"


def test_sweep_leaves_what_is_not_due_alone(app: Cairnloop) -> None:
    waiting = _propose(app, "a", ttl=3 * HOUR)
    deferred = _propose(app, "b")
    app.defer(deferred, actor="alice", reason="later", until=utcnow() + 3 * HOUR)
    app.defer(
        _propose(app, "c"), actor="alice", reason="no time given, waits for reopen"
    )
    before = snapshot(app.engine)

    assert app.expire_due(now=utcnow() + HOUR) == 0
    assert snapshot(app.engine) == before
    assert app.get(waiting).status == "pending"


def test_sweep_never_touches_decided_or_refused_proposals(app: Cairnloop) -> None:
    approved = _propose(app, "a", ttl=HOUR)
    app.approve(approved, actor="alice")
    rejected = _propose(app, "b", ttl=HOUR)
    app.reject(rejected, actor="alice", reason="no")
    app.propose("internal_note", actor=AGENT, input={}, ttl=HOUR)
    before = snapshot(app.engine)

    assert app.expire_due(now=utcnow() + 2 * HOUR) == 0
    assert snapshot(app.engine) == before


def test_sweep_handles_every_due_proposal_and_a_second_sweep_finds_none(
    app: Cairnloop,
) -> None:
    ids = [_propose(app, f"note {n}", ttl=HOUR) for n in range(5)]
    later = utcnow() + 2 * HOUR

    assert app.expire_due(now=later) == 5
    assert app.expire_due(now=later) == 0
    assert {app.get(pid).status for pid in ids} == {"expired"}
    assert app.verify_audit()[1] == []


def test_expired_call_can_be_proposed_again(app: Cairnloop) -> None:
    first = _propose(app, ttl=HOUR)
    app.expire_due(now=utcnow() + 2 * HOUR)

    again = _propose(app)

    assert again != first
    assert app.get(again).status == "pending"


@pytest.mark.parametrize(
    "now", [dt.datetime(2030, 1, 1), "2030-01-01", 0], ids=["naive", "text", "zero"]
)
def test_sweep_time_must_be_timezone_aware(app: Cairnloop, now: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        app.expire_due(now=now)  # type: ignore[arg-type]

    assert str(caught.value) == "now: must be a timezone-aware date and time"
