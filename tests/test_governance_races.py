"""Races between real processes: one decision wins, duplicates make one row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from governance_racers import RACERS, Racers, racers
from sqlalchemy import func, select

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.schema import events, proposals

NOTE = {"conversation_id": "c-1", "content": "Customer asked for a callback."}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def group() -> Iterator[Racers]:
    with racers() as started:
        yield started


def _count(app: Cairnloop, table: object) -> int:
    with app.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(table)  # type: ignore[arg-type]
        ).scalar_one()


def test_eight_processes_deciding_one_proposal_make_exactly_one_decision(
    app: Cairnloop, group: Racers, database_url: str
) -> None:
    proposed = app.propose("internal_note", actor=Actor("bot", "agent"), input=NOTE)
    pid = proposed.proposal.id

    # Even racers approve, odd racers reject.
    outcomes = group.race("decide", database_url, {"proposal_id": pid})

    kinds = Counter(outcome[0] for outcome in outcomes)
    assert kinds == {"decided": 1, "refused": RACERS - 1}, outcomes
    status = app.get(pid).status
    assert [o[1] for o in outcomes if o[0] == "decided"] == [status]
    refusals = {
        "approved": f"Proposal {pid} is no longer pending (it is {status}); "
        "it cannot be approved and nothing was changed.",
        "rejected": f"Proposal {pid} is no longer pending or deferred "
        f"(it is {status}); it cannot be rejected and nothing was changed.",
    }
    for index, (kind, detail) in enumerate(outcomes):
        if kind == "refused":
            verb = "approved" if index % 2 == 0 else "rejected"
            assert detail == refusals[verb]
    assert [e.type for e in app.events(pid)] == ["proposed", status.value]
    assert app.verify_audit()[1] == []


@pytest.mark.parametrize("key", [None, "tool-call-42"], ids=["derived", "caller"])
def test_eight_processes_proposing_the_same_call_make_one_proposal(
    app: Cairnloop, group: Racers, database_url: str, key: str | None
) -> None:
    payload = {"actor": "bot", "input": NOTE, "key": key}

    outcomes = group.race("propose", database_url, payload)

    kinds = Counter(outcome[0] for outcome in outcomes)
    assert kinds == {"created": 1, "duplicate": RACERS - 1}, outcomes
    assert len({outcome[1] for outcome in outcomes}) == 1
    assert _count(app, proposals) == 1
    assert _count(app, events) == 1
    assert app.verify_audit()[1] == []
