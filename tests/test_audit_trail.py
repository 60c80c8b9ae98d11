"""The audit trail: append-only in the database, hash-chained, and checked by
``cairnloop audit verify`` in a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from governance_support import run_cli, snapshot, tamper
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.audit import event_hash
from cairnloop_core.schema import events

REFUSAL = "cairnloop_events is append-only: events cannot be updated or deleted"
AGENT = Actor("bot-7", "agent")


@pytest.fixture
def trail(app: Cairnloop) -> Iterator[Cairnloop]:
    """Proposal 1 ran (events 1-3: proposed, approved, succeeded); proposal 2
    waits (event 1: proposed)."""
    app.create_conversation("c-1")
    ran = app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "c-1", "content": "Called back."},
    )
    app.approve(ran.proposal.id, actor="alice", note="fine")
    assert [o.status for o in app.drain()] == ["succeeded"]
    waits = app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "c-1", "content": "Second note."},
    )
    assert (ran.proposal.id, waits.proposal.id) == (1, 2)
    yield app


def _problems(app: Cairnloop) -> list[str]:
    return [str(problem) for problem in app.verify_audit()[1]]


def _verify(database_url: str, *options: str) -> tuple[int, str, str]:
    result = run_cli(database_url, "audit", "verify", *options)
    return result.code, result.stdout, result.stderr


BROKEN = (
    "Audit trail broken: {n} problem(s) in {m} event(s); each is listed on stdout.\n"
)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE cairnloop_events SET reason = 'nothing to see' WHERE seq = 2",
        "DELETE FROM cairnloop_events WHERE proposal_id = 1 AND seq = 3",
        "DELETE FROM cairnloop_events",
    ],
    ids=["update", "delete-one", "delete-all"],
)
def test_the_database_refuses_to_change_or_delete_an_event(
    trail: Cairnloop, statement: str
) -> None:
    before = snapshot(trail.engine)

    with pytest.raises(DBAPIError) as caught, trail.engine.begin() as connection:
        connection.execute(text(statement))

    assert REFUSAL in str(caught.value.orig)
    assert snapshot(trail.engine) == before


def test_postgresql_refuses_to_truncate_the_events(postgres_url: str) -> None:
    with Cairnloop(postgres_url) as app:
        app.upgrade()
        app.propose("internal_note", actor=AGENT, input={"content": ""})
        before = snapshot(app.engine)

        with pytest.raises(DBAPIError) as caught, app.engine.begin() as connection:
            connection.execute(text("TRUNCATE cairnloop_events CASCADE"))

        assert REFUSAL in str(caught.value.orig)
        assert snapshot(app.engine) == before


def test_each_event_links_to_the_hash_of_the_one_before(trail: Cairnloop) -> None:
    with trail.engine.connect() as connection:
        rows = (
            connection.execute(
                select(events).where(events.c.proposal_id == 1).order_by(events.c.seq)
            )
            .mappings()
            .all()
        )

    assert [row["prev_hash"] for row in rows] == [
        None,
        rows[0]["hash"],
        rows[1]["hash"],
    ]
    for row in rows:
        assert event_hash(row["prev_hash"], dict(row)) == row["hash"]
    assert [(r["actor_id"], r["actor_kind"]) for r in rows] == [
        ("bot-7", "agent"),
        ("alice", "operator"),
        ("cairnloop", "system"),
    ]
    assert [(r["from_status"], r["to_status"]) for r in rows] == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "succeeded"),
    ]
    assert {r["input_hash"] for r in rows} == {trail.get(1).input_hash}


def test_audit_verify_reports_an_intact_trail(
    trail: Cairnloop, database_url: str
) -> None:
    assert _verify(database_url) == (
        0,
        "Audit trail intact: 4 event(s) verified.\n",
        "",
    )


def test_audit_verify_names_the_proposal_and_event_whose_reason_was_edited(
    trail: Cairnloop, database_url: str
) -> None:
    tamper(
        database_url,
        "UPDATE cairnloop_events SET reason = 'approved by the CEO' "
        "WHERE proposal_id = 1 AND seq = 2",
    )

    assert _verify(database_url) == (
        1,
        "TAMPERED: proposal 1, event 2: was edited after it was written\n",
        BROKEN.format(n=1, m=4),
    )


def test_verification_finds_an_event_rewritten_with_a_fresh_hash(
    trail: Cairnloop, database_url: str
) -> None:
    with trail.engine.connect() as connection:
        row = dict(
            connection.execute(
                select(events).where(events.c.proposal_id == 1, events.c.seq == 2)
            )
            .mappings()
            .one()
        )
    row["actor_id"] = "mallory"
    forged = event_hash(row["prev_hash"], row)
    tamper(
        database_url,
        (
            "UPDATE cairnloop_events SET actor_id = 'mallory', hash = :hash "
            "WHERE proposal_id = 1 AND seq = 2",
            {"hash": forged},
        ),
    )

    assert _problems(trail) == [
        "proposal 1, event 3: does not link to the event before it",
    ]


def test_audit_verify_names_a_deleted_event(
    trail: Cairnloop, database_url: str
) -> None:
    tamper(
        database_url, "DELETE FROM cairnloop_events WHERE proposal_id = 1 AND seq = 2"
    )

    assert _verify(database_url) == (
        1,
        "TAMPERED: proposal 1, event 2: is missing (deleted or never written)\n"
        "TAMPERED: proposal 1, event 3: does not link to the event before it\n",
        BROKEN.format(n=2, m=3),
    )


def test_verification_finds_the_last_event_deleted(
    trail: Cairnloop, database_url: str
) -> None:
    tamper(
        database_url, "DELETE FROM cairnloop_events WHERE proposal_id = 1 AND seq = 3"
    )

    assert _problems(trail) == [
        "proposal 1, its event list: the proposal records 3 events but "
        "2 chain up to its last hash; events were deleted or replaced",
        "proposal 1, its event list: its status is succeeded but its "
        "last event left it approved; the row or its events were "
        "changed outside Cairnloop",
    ]


def test_verification_finds_a_status_changed_without_an_event(
    trail: Cairnloop, database_url: str
) -> None:
    tamper(
        database_url, "UPDATE cairnloop_proposals SET status = 'approved' WHERE id = 2"
    )

    assert _problems(trail) == [
        "proposal 2, its event list: its status is approved but its "
        "last event left it pending; the row or its events were changed"
        " outside Cairnloop",
    ]


def test_verification_finds_an_input_swapped_after_it_was_proposed(
    trail: Cairnloop, database_url: str
) -> None:
    evil = json.dumps({"conversation_id": "c-1", "content": "Refund 10,000."})
    tamper(
        database_url,
        ("UPDATE cairnloop_proposals SET input = :input WHERE id = 2", {"input": evil}),
    )

    assert _problems(trail) == [
        "proposal 2, its event list: its input no longer matches its "
        "input hash; the input was changed after it was proposed",
    ]


def test_verification_finds_an_input_swapped_together_with_its_hash(
    trail: Cairnloop, database_url: str
) -> None:
    from cairnloop_core.inputs import hash_input

    evil = {"conversation_id": "c-1", "content": "Refund 10,000."}
    tamper(
        database_url,
        (
            "UPDATE cairnloop_proposals SET input = :input, input_hash = :hash "
            "WHERE id = 2",
            {"input": json.dumps(evil), "hash": hash_input(evil)},
        ),
    )

    assert _problems(trail) == [
        "proposal 2, event 1: records another input hash than the proposal row holds",
    ]


def test_audit_verify_json_lists_each_problem(
    trail: Cairnloop, database_url: str
) -> None:
    tamper(database_url, "UPDATE cairnloop_events SET reason = 'x' WHERE seq = 1")

    code, stdout, stderr = _verify(database_url, "--json")

    assert code == 1
    assert json.loads(stdout) == {
        "events_checked": 4,
        "ok": False,
        "problems": [
            {"proposal_id": 1, "seq": 1, "problem": "was edited after it was written"},
            {"proposal_id": 2, "seq": 1, "problem": "was edited after it was written"},
        ],
    }
    assert stderr == BROKEN.format(n=2, m=4)
