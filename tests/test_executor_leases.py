"""Leases of non-transactional runs: a dead worker's lease expires and another
worker retries with the same idempotency key; a worker that lost its lease
records nothing."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import cairnloop_fault_tools as fault_tools
import pytest
from executor_support import (
    Apps,
    InlineTool,
    WorkerProcess,
    approved,
    calls_in,
    cli_env,
    event_types,
    install_fault_tools,
    registry_with,
    tool_spec,
    wait_for,
    wait_for_status,
)
from sqlalchemy import update

from cairnloop_core import RunContext
from cairnloop_core.executor import Executor, RunOutcome, run_key
from cairnloop_core.schema import proposals, utcnow


def test_attempt_whose_lease_was_taken_over_records_nothing(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    go_on = threading.Event()

    def slow_first(input: Any, context: RunContext) -> dict[str, int]:
        if context.attempt == 1:
            started.set()
            go_on.wait(60)
        return {"attempt": context.attempt}

    tool = InlineTool(tool_spec(timeout_seconds=60, max_attempts=3), slow_first)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})
    first = Executor(app.engine, app.registry, app.settings, worker_id="worker-a")
    second = Executor(app.engine, app.registry, app.settings, worker_id="worker-b")
    outcomes: list[RunOutcome | None] = []
    runner = threading.Thread(target=lambda: outcomes.append(first.run_once()))

    with caplog.at_level(logging.INFO, logger="cairnloop_core"):
        runner.start()
        wait_for(started.is_set, what="attempt 1 to start")
        # worker-a's host froze past its lease, as far as the others can tell.
        with app.engine.begin() as connection:
            connection.execute(
                update(proposals)
                .where(proposals.c.id == proposal_id)
                .values(lease_expires_at=utcnow() - dt.timedelta(seconds=1))
            )
        recovered = second.run_once()
        go_on.set()
        runner.join(60)

    assert recovered is not None
    assert (recovered.event, recovered.attempt) == ("succeeded", 2)
    assert outcomes[0] is not None
    assert (outcomes[0].event, outcomes[0].status) == ("lease_lost", "succeeded")
    assert event_types(app, proposal_id) == [
        "proposed",
        "approved",
        "started",
        "lease_recovered",
        "succeeded",
    ]
    takeover = app.events(proposal_id)[3]
    assert takeover.reason == "the lease of worker-a expired"
    assert takeover.data is not None and takeover.data["worker"] == "worker-b"
    assert app.get(proposal_id).result == {"attempt": 2}
    assert [c.idempotency_key for c in tool.calls] == [run_key(proposal_id)] * 2
    logged = [getattr(r, "event", None) for r in caplog.records]
    assert "lease_recovered" in logged and "lease_lost" in logged


def start_doomed_worker(
    tmp_path: Path, database_url: str, *extra_env: tuple[str, str]
) -> tuple[dict[str, str], WorkerProcess]:
    """A worker that dies by SIGKILL inside the run of its first attempt."""
    pythonpath = install_fault_tools(tmp_path / "site")
    env = cli_env(database_url, PYTHONPATH=pythonpath)
    doomed = WorkerProcess(
        tmp_path / "doomed.log",
        {**env, fault_tools.CRASH_ENV: "1"},
        "--lease-margin",
        "0.2",
    )
    return env, doomed


def test_worker_killed_during_a_leased_run_is_recovered_with_the_same_key(
    apps: Apps, database_url: str, tmp_path: Path
) -> None:
    app = apps.open(registry_with(fault_tools.scripted_call))
    marker = tmp_path / "calls.jsonl"
    proposal_id = approved(
        app, "scripted_call", {"marker": str(marker), "crash_on": [1]}
    )

    env, doomed = start_doomed_worker(tmp_path, database_url)
    assert doomed.wait() == -signal.SIGKILL
    stranded = app.get(proposal_id)
    assert (stranded.status.value, stranded.attempts) == ("running", 1)

    rescuer = WorkerProcess(tmp_path / "rescuer.log", env, "--poll-seconds", "60")
    try:
        wait_for_status(app, proposal_id, "succeeded")
    finally:
        rescuer.process.send_signal(signal.SIGTERM)
        assert rescuer.wait() == 0

    calls = calls_in(marker)
    assert [(c["attempt"], c["key"]) for c in calls] == [
        (1, run_key(proposal_id)),
        (2, run_key(proposal_id)),
    ]
    assert [c["pid"] for c in calls] == [doomed.pid, rescuer.pid]
    assert event_types(app, proposal_id) == [
        "proposed",
        "approved",
        "started",
        "lease_recovered",
        "succeeded",
    ]
    assert app.get(proposal_id).attempts == 2
    assert f"Recovered proposal {proposal_id}: the lease of " in rescuer.stderr()
    assert app.verify_audit()[1] == []


def test_lease_expired_on_the_last_attempt_fails_without_running_again(
    apps: Apps, database_url: str, tmp_path: Path
) -> None:
    app = apps.open(registry_with(fault_tools.scripted_call_once))
    marker = tmp_path / "calls.jsonl"
    proposal_id = approved(
        app, "scripted_call_once", {"marker": str(marker), "crash_on": [1]}
    )

    env, doomed = start_doomed_worker(tmp_path, database_url)
    assert doomed.wait() == -signal.SIGKILL
    lost_owner = app.get(proposal_id)
    rescuer = WorkerProcess(tmp_path / "rescuer.log", env, "--poll-seconds", "60")
    try:
        wait_for_status(app, proposal_id, "failed")
    finally:
        rescuer.process.send_signal(signal.SIGTERM)
        assert rescuer.wait() == 0

    assert len(calls_in(marker)) == 1
    proposal = app.get(proposal_id)
    assert lost_owner.status.value == "running"
    assert proposal.reason is not None
    assert proposal.reason.startswith(
        "Attempt 1 of 1 never reported back: its worker ("
    )
    assert f":{doomed.pid}:" in proposal.reason
    assert proposal.reason.endswith(
        "stopped and the lease expired. No attempts are left; the outcome of that "
        "attempt is unknown."
    )
    assert event_types(app, proposal_id) == [
        "proposed",
        "approved",
        "started",
        "failed",
    ]


def test_recovered_proposal_that_fails_its_recheck_says_the_attempt_may_have_run(
    sqlite_url: str, tmp_path: Path
) -> None:
    apps = Apps(sqlite_url)
    try:
        app = apps.open(registry_with(fault_tools.scripted_call))
        marker = tmp_path / "calls.jsonl"
        proposal_id = approved(
            app, "scripted_call", {"marker": str(marker), "crash_on": [1]}
        )
        env, doomed = start_doomed_worker(tmp_path, sqlite_url)
        assert doomed.wait() == -signal.SIGKILL

        without_tool = {**env, "CAIRNLOOP_PLUGINS_BLOCK": "scripted_call"}
        rescuer = WorkerProcess(
            tmp_path / "rescuer.log", without_tool, "--poll-seconds", "60"
        )
        try:
            wait_for_status(app, proposal_id, "invalidated")
        finally:
            rescuer.process.send_signal(signal.SIGTERM)
            assert rescuer.wait() == 0

        assert app.get(proposal_id).reason == (
            "Tool 'scripted_call' is not installed in the worker that claimed the "
            "proposal. Attempt 1 may have reached the tool before its worker stopped."
        )
        assert len(calls_in(marker)) == 1
    finally:
        apps.close()
