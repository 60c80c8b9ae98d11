"""The executor claims due proposals in batches: one transaction, each
transactional run in a savepoint of its own, at most one lease per batch."""

from __future__ import annotations

from typing import Any

import pytest
from executor_support import (
    Apps,
    InlineTool,
    approved,
    cli_env,
    event_types,
    note_rows,
    registry_with,
    run_cli,
    status_of,
    tool_spec,
)
from sqlalchemy import insert

from cairnloop_core import (
    Cairnloop,
    PermanentToolError,
    Registry,
    RunContext,
    Settings,
)
from cairnloop_core.errors import InvalidArgument
from cairnloop_core.schema import messages, utcnow

CONVERSATION = "conv-batch"


def write_note(input: Any, context: RunContext) -> dict[str, Any]:
    """Writes one message, then fails as the input's text asks."""
    assert context.session is not None
    clash = input.text.startswith("clash")
    run_key = "shared-key" if clash else context.idempotency_key
    context.session.execute(
        insert(messages).values(
            conversation_id=CONVERSATION,
            role="internal_note",
            content=input.text,
            run_key=run_key,
            created_at=utcnow(),
        )
    )
    if input.text == "refuse":
        raise PermanentToolError("refused after writing")
    return {"wrote": input.text}


def open_writer(apps: Apps, settings: Settings | None = None) -> Cairnloop:
    tool = InlineTool(tool_spec("note", transactional=True), write_note)
    app = apps.open(registry_with(tool), settings)
    app.create_conversation(CONVERSATION)
    return app


def test_a_failing_tool_in_a_batch_rolls_back_only_its_own_writes(
    apps: Apps,
) -> None:
    app = open_writer(apps)
    texts = ["first", "refuse", "clash one", "clash two", "last"]
    ids = [approved(app, "note", {"text": text}) for text in texts]

    outcomes = app.executor.run_batch()

    assert [(o.proposal_id, o.event) for o in outcomes] == [
        (ids[0], "succeeded"),
        (ids[1], "failed"),
        (ids[2], "succeeded"),
        (ids[3], "attempt_failed"),
        (ids[4], "succeeded"),
    ]
    assert [row["content"] for row in note_rows(app)] == ["first", "clash one", "last"]
    assert app.get(ids[1]).reason == "refused after writing"
    assert app.get(ids[3]).reason in (
        "The tool's database write failed: IntegrityError",
        "The tool's database write failed: UniqueViolation",
    )
    assert event_types(app, ids[3]) == ["proposed", "approved", "attempt_failed"]
    assert app.verify_audit()[1] == []


def test_one_transaction_claims_at_most_batch_size_proposals(apps: Apps) -> None:
    app = open_writer(apps, Settings(batch_size=2))
    ids = [approved(app, "note", {"text": f"note {n}"}) for n in range(5)]

    first = app.executor.run_batch()

    assert [o.proposal_id for o in first] == ids[:2]
    assert [status_of(app, pid) for pid in ids] == [
        "succeeded",
        "succeeded",
        "approved",
        "approved",
        "approved",
    ]
    assert [o.proposal_id for o in app.drain()] == ids[2:]
    assert len(note_rows(app)) == 5


def test_a_batch_takes_one_lease_and_leaves_the_next_call_for_later(
    apps: Apps,
) -> None:
    remote = InlineTool(tool_spec("remote"))
    note = InlineTool(tool_spec("note", transactional=True), write_note)
    app = apps.open(registry_with(remote, note))
    app.create_conversation(CONVERSATION)
    first_call = approved(app, "remote", {"text": "call one"})
    second_call = approved(app, "remote", {"text": "call two"})
    written = approved(app, "note", {"text": "written"})

    outcomes = app.executor.run_batch()

    assert [(o.proposal_id, o.event) for o in outcomes] == [
        (written, "succeeded"),
        (first_call, "succeeded"),
    ]
    assert event_types(app, first_call) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]
    assert status_of(app, second_call) == "approved"
    assert [context.proposal_id for context in remote.calls] == [first_call]

    assert [(o.proposal_id, o.event) for o in app.drain()] == [
        (second_call, "succeeded")
    ]
    assert app.verify_audit()[1] == []


def test_a_stop_requested_mid_batch_leaves_the_rest_claimable(apps: Apps) -> None:
    holder: list[Cairnloop] = []

    def stop_after_writing(input: Any, context: RunContext) -> dict[str, Any]:
        holder[0].executor.request_stop()
        return write_note(input, context)

    tool = InlineTool(tool_spec("note", transactional=True), stop_after_writing)
    app = apps.open(registry_with(tool))
    holder.append(app)
    app.create_conversation(CONVERSATION)
    ids = [approved(app, "note", {"text": f"note {n}"}) for n in range(3)]

    outcomes = app.executor.run_batch()

    assert [(o.proposal_id, o.event) for o in outcomes] == [(ids[0], "succeeded")]
    assert [status_of(app, pid) for pid in ids] == [
        "succeeded",
        "approved",
        "approved",
    ]
    assert [row["content"] for row in note_rows(app)] == ["note 0"]


@pytest.mark.parametrize("value", [0, 1001, 2.5, True])
def test_batch_size_setting_refuses_values_that_cannot_work(value: Any) -> None:
    with pytest.raises(InvalidArgument) as refused:
        Settings(batch_size=value)

    assert str(refused.value) == "batch_size: must be a whole number from 1 to 1000"


def test_worker_once_with_a_small_batch_size_runs_every_note_once(
    sqlite_url: str, registry: Registry
) -> None:
    apps = Apps(sqlite_url)
    try:
        app = apps.open(registry)
        app.create_conversation("conv-1")
        ids = [
            approved(
                app,
                "internal_note",
                {"conversation_id": "conv-1", "content": f"Note {n}."},
            )
            for n in range(5)
        ]

        done = run_cli("worker", "--once", "--batch-size", "2", env=cli_env(sqlite_url))

        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            "Handled 5 proposal(s).\n",
            "",
        )
        assert [status_of(app, pid) for pid in ids] == ["succeeded"] * 5
        assert [row["content"] for row in note_rows(app)] == [
            f"Note {n}." for n in range(5)
        ]
    finally:
        apps.close()
