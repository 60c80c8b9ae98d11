"""The worker embedded in a host: on a thread, as an asyncio task, woken in
process, by PostgreSQL notifications or by polling, and sweeping expiry."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from executor_support import (
    OPERATOR,
    Apps,
    approved,
    event_types,
    note_rows,
    wait_for,
    wait_for_status,
)

from cairnloop_core import Cairnloop, CairnloopError, InvalidArgument, Registry
from cairnloop_core.executor import run_key
from cairnloop_core.schema import utcnow
from cairnloop_core.settings import Settings
from cairnloop_core.worker import Worker

IDLE_FOR_AN_HOUR = Settings(poll_seconds=3600)


def note(app: Cairnloop, text: str) -> int:
    app.create_conversation("c-1")
    return approved(app, "internal_note", {"conversation_id": "c-1", "content": text})


def test_worker_on_a_thread_runs_approvals_and_stops_cleanly(
    apps: Apps, registry: Registry
) -> None:
    app = apps.open(registry, IDLE_FOR_AN_HOUR)
    worker = app.worker(concurrency=2).start()
    try:
        first = note(app, "first")
        wait_for_status(app, first, "succeeded")
        second = note(app, "second")
        wait_for_status(app, second, "succeeded")
    finally:
        stopped = worker.stop(timeout=30)

    assert stopped is True
    assert worker.running is False
    assert worker.handled == 2
    assert [(r["content"], r["run_key"]) for r in note_rows(app)] == [
        ("first", run_key(first)),
        ("second", run_key(second)),
    ]
    assert event_types(app, second) == ["proposed", "approved", "succeeded"]


def test_asyncio_task_serves_until_cancelled_then_stops_the_worker(
    apps: Apps, registry: Registry
) -> None:
    app = apps.open(registry, IDLE_FOR_AN_HOUR)
    worker = app.worker()

    async def host() -> int:
        task = asyncio.create_task(worker.serve())
        proposal_id = await asyncio.to_thread(note, app, "from asyncio")
        await asyncio.to_thread(wait_for_status, app, proposal_id, "succeeded")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return proposal_id

    proposal_id = asyncio.run(host())

    assert worker.running is False
    assert worker.handled == 1
    assert app.get(proposal_id).status.value == "succeeded"
    assert [r["content"] for r in note_rows(app)] == ["from asyncio"]


def test_asyncio_serve_returns_the_count_when_the_worker_is_stopped(
    sqlite_url: str, registry: Registry
) -> None:
    apps = Apps(sqlite_url)
    app = apps.open(registry, IDLE_FOR_AN_HOUR)
    worker = app.worker()

    async def host() -> int:
        task = asyncio.create_task(worker.serve())
        proposal_id = await asyncio.to_thread(note, app, "counted")
        await asyncio.to_thread(wait_for_status, app, proposal_id, "succeeded")
        worker.request_stop()
        return await task

    try:
        assert asyncio.run(host()) == 1
    finally:
        apps.close()


def test_embedded_sqlite_worker_is_woken_in_process_while_polling_hourly(
    sqlite_url: str, registry: Registry
) -> None:
    apps = Apps(sqlite_url)
    app = apps.open(registry, IDLE_FOR_AN_HOUR)
    worker = app.worker().start()
    try:
        # The second round can only be picked up by the wake-up: the worker
        # is idle, with nothing due for an hour.
        for text in ("round one", "round two"):
            proposal_id = note(app, text)
            wait_for_status(app, proposal_id, "succeeded", timeout=30)
    finally:
        worker.stop()
        apps.close()
    assert worker.handled == 2


def test_postgres_notification_wakes_an_idle_worker_polling_hourly(
    postgres_url: str, registry: Registry
) -> None:
    apps = Apps(postgres_url)
    worker_app = apps.open(registry, IDLE_FOR_AN_HOUR)
    # Approvals come through another facade, so no in-process wake-up can
    # reach the worker: only NOTIFY can.
    other = apps.open(registry)
    worker = worker_app.worker().start()
    try:
        wait_for(lambda: worker.listening, what="the worker to LISTEN")
        for text in ("round one", "round two"):
            proposal_id = note(other, text)
            wait_for_status(other, proposal_id, "succeeded", timeout=30)
    finally:
        worker.stop()
        apps.close()
    assert worker.handled == 2


def test_sqlite_worker_polls_for_work_approved_by_another_process(
    sqlite_url: str, registry: Registry
) -> None:
    apps = Apps(sqlite_url)
    worker_app = apps.open(registry, Settings(poll_seconds=0.05))
    other = apps.open(registry)
    worker = worker_app.worker().start()
    try:
        proposal_id = note(other, "found by polling")
        wait_for_status(other, proposal_id, "succeeded", timeout=30)
    finally:
        worker.stop()
        apps.close()


def test_idle_worker_wakes_to_expire_and_to_end_deferrals_when_they_fall_due(
    apps: Apps, registry: Registry
) -> None:
    app = apps.open(registry, IDLE_FOR_AN_HOUR)
    app.create_conversation("c-1")
    short = app.propose(
        "internal_note",
        actor="support-bot",
        input={"conversation_id": "c-1", "content": "soon stale"},
        ttl=dt.timedelta(seconds=0.5),
    ).proposal
    later = app.propose(
        "internal_note",
        actor="support-bot",
        input={"conversation_id": "c-1", "content": "look again soon"},
    ).proposal
    assert short is not None and later is not None
    app.defer(
        later.id,
        actor=OPERATOR,
        reason="waiting for billing",
        until=utcnow() + dt.timedelta(seconds=0.5),
    )

    worker = app.worker().start()
    try:
        wait_for_status(app, short.id, "expired", timeout=30)
        wait_for_status(app, later.id, "pending", timeout=30)
    finally:
        worker.stop()

    assert app.events(short.id)[-1].reason == "the TTL passed"
    assert app.events(later.id)[-1].reason == "the deferral ended"


def test_worker_run_once_with_concurrency_drains_every_approval_once(
    apps: Apps, registry: Registry
) -> None:
    app = apps.open(registry)
    ids = [note(app, f"note {n}") for n in range(20)]

    handled = app.worker(concurrency=4).run(once=True)

    assert handled == 20
    assert app.count_by_status() == {"succeeded": 20}
    assert sorted(r["run_key"] for r in note_rows(app)) == sorted(
        run_key(i) for i in ids
    )


def test_a_worker_runs_only_once(sqlite_url: str, registry: Registry) -> None:
    apps = Apps(sqlite_url)
    try:
        worker = apps.open(registry).worker()
        worker.run(once=True)
        with pytest.raises(CairnloopError) as refused:
            worker.start()
    finally:
        apps.close()
    assert str(refused.value) == (
        "This worker has already run; create a new one with app.worker() to run again."
    )


@pytest.mark.parametrize("value", [0, 65, 1.5, True, "2"])
def test_worker_refuses_a_concurrency_out_of_range(
    sqlite_url: str, value: object
) -> None:
    apps = Apps(sqlite_url)
    try:
        with pytest.raises(InvalidArgument) as refused:
            Worker(apps.open(), concurrency=value)  # type: ignore[arg-type]
    finally:
        apps.close()
    assert str(refused.value) == "concurrency: must be a whole number from 1 to 64"
