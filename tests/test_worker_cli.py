"""``cairnloop worker`` as a real process: the main job end to end, clean
stops on SIGTERM, PostgreSQL wake-ups, and bad options."""

from __future__ import annotations

import signal
from pathlib import Path

import cairnloop_fault_tools as fault_tools
import pytest
from executor_support import (
    Apps,
    WorkerProcess,
    approved,
    calls_in,
    cli_env,
    cli_json,
    event_types,
    install_fault_tools,
    note_rows,
    registry_with,
    run_cli,
    wait_for,
    wait_for_status,
)

from cairnloop_core import Registry
from cairnloop_core.executor import run_key
from cairnloop_core.schema import utcnow


def test_propose_approve_and_worker_once_write_exactly_one_note(
    database_url: str, registry: Registry
) -> None:
    env = cli_env(database_url)
    apps = Apps(database_url)
    try:
        app = apps.open(registry)
        app.create_conversation("conv-1", title="Refund for order 1001")

        proposed = cli_json(
            "propose",
            "internal_note",
            "--actor",
            "support-bot",
            "--input",
            '{"conversation_id": "conv-1", "content": "Refund approved."}',
            env=env,
        )
        proposal_id = proposed["proposal_id"]
        assert (proposed["outcome"], proposed["status"]) == ("created", "pending")
        approval = run_cli("approve", str(proposal_id), "--actor", "alice", env=env)
        assert approval.returncode == 0, approval.stderr

        first = run_cli("worker", "--once", env=env)
        second = run_cli("worker", "--once", env=env)
        shown = cli_json("show", str(proposal_id), env=env)

        assert (first.returncode, first.stdout, first.stderr) == (
            0,
            "Handled 1 proposal(s).\n",
            "",
        )
        assert (second.returncode, second.stdout) == (0, "Handled 0 proposal(s).\n")
        assert shown["status"] == "succeeded"
        assert [(e["seq"], e["type"]) for e in shown["events"]] == [
            (1, "proposed"),
            (2, "approved"),
            (3, "succeeded"),
        ]
        assert [(e["from_status"], e["to_status"]) for e in shown["events"]] == [
            (None, "pending"),
            ("pending", "approved"),
            ("approved", "succeeded"),
        ]
        rows = note_rows(app)
        assert [(r["role"], r["content"], r["run_key"]) for r in rows] == [
            ("internal_note", "Refund approved.", run_key(proposal_id))
        ]
        assert shown["result"] == {
            "message_id": rows[0]["id"],
            "conversation_id": "conv-1",
        }
        assert app.verify_audit() == (3, [])
    finally:
        apps.close()


def fault_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return cli_env(database_url, PYTHONPATH=install_fault_tools(tmp_path / "site"))


def test_sigterm_lets_the_running_call_finish_then_exits_zero(
    apps: Apps, database_url: str, tmp_path: Path
) -> None:
    app = apps.open(registry_with(fault_tools.patient_call))
    marker, hold = tmp_path / "calls.jsonl", tmp_path / "answer"
    proposal_id = approved(
        app, "patient_call", {"marker": str(marker), "hold_until": str(hold)}
    )
    worker = WorkerProcess(
        tmp_path / "worker.log",
        fault_env(tmp_path, database_url),
        "--stop-grace",
        "120",
    )
    try:
        wait_for(lambda: calls_in(marker), what="the call to start")
        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for_log(f"for the run of proposal {proposal_id}")
        hold.touch()
        code = worker.wait()
    finally:
        worker.kill()

    assert code == 0
    assert worker.stdout() == "Stopped after handling 1 proposal(s).\n"
    proposal = app.get(proposal_id)
    assert (proposal.status.value, proposal.attempts) == ("succeeded", 1)
    assert event_types(app, proposal_id) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]


def test_sigterm_releases_a_call_that_outlives_the_grace_for_a_retry(
    apps: Apps, database_url: str, tmp_path: Path
) -> None:
    app = apps.open(registry_with(fault_tools.patient_call))
    marker, hold = tmp_path / "calls.jsonl", tmp_path / "answer"
    proposal_id = approved(
        app, "patient_call", {"marker": str(marker), "hold_until": str(hold)}
    )
    env = fault_env(tmp_path, database_url)
    worker = WorkerProcess(tmp_path / "worker.log", env, "--stop-grace", "0.2")
    try:
        wait_for(lambda: calls_in(marker), what="the call to start")
        worker.process.send_signal(signal.SIGTERM)
        code = worker.wait()
    finally:
        worker.kill()

    assert code == 0
    assert worker.stdout() == "Stopped after handling 1 proposal(s).\n"
    released = app.get(proposal_id)
    assert (released.status.value, released.attempts) == ("approved", 1)
    assert released.due_at is not None and released.due_at <= utcnow()
    last = app.events(proposal_id)[-1]
    assert (last.type, last.from_status, last.to_status, last.reason) == (
        "released",
        "running",
        "approved",
        "The worker stopped before the tool finished.",
    )

    hold.touch()
    retry = run_cli("worker", "--once", env=env)

    assert (retry.returncode, retry.stdout) == (0, "Handled 1 proposal(s).\n")
    assert app.get(proposal_id).status.value == "succeeded"
    assert [(c["attempt"], c["key"]) for c in calls_in(marker)] == [
        (1, run_key(proposal_id)),
        (2, run_key(proposal_id)),
    ]
    assert event_types(app, proposal_id) == [
        "proposed",
        "approved",
        "started",
        "released",
        "started",
        "succeeded",
    ]


def test_sigterm_stops_an_idle_worker_at_once_with_exit_zero(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = cli_env(sqlite_url)
    assert run_cli("db", "upgrade", env=env).returncode == 0
    worker = WorkerProcess(tmp_path / "worker.log", env, "--poll-seconds", "3600")
    try:
        worker.wait_for_log("started with 1 loop(s)")
        worker.process.send_signal(signal.SIGTERM)
        code = worker.wait()
    finally:
        worker.kill()

    assert code == 0
    assert worker.stdout() == "Stopped after handling 0 proposal(s).\n"
    assert "stopped after 0 proposal(s)" in worker.stderr()
    assert "Traceback" not in worker.stderr()


def test_worker_process_polling_hourly_is_woken_by_postgres_notifications(
    postgres_url: str, registry: Registry, tmp_path: Path
) -> None:
    apps = Apps(postgres_url)
    app = apps.open(registry)
    app.create_conversation("c-1")
    worker = WorkerProcess(
        tmp_path / "worker.log",
        cli_env(postgres_url),
        "--poll-seconds",
        "3600",
    )
    try:
        worker.wait_for_log("Listening for notifications on channel cairnloop_work")
        for text in ("round one", "round two"):
            proposal_id = approved(
                app, "internal_note", {"conversation_id": "c-1", "content": text}
            )
            wait_for_status(app, proposal_id, "succeeded", timeout=30)
        worker.process.send_signal(signal.SIGTERM)
        code = worker.wait()
    finally:
        worker.kill()
        apps.close()

    assert code == 0
    assert worker.stdout() == "Stopped after handling 2 proposal(s).\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--concurrency", "0"],
            "Error: Invalid value for '--concurrency': 0 is not in the range "
            "1<=x<=64. (see 'cairnloop worker --help')",
        ),
        (
            ["--poll-seconds", "0"],
            "Error: Invalid value for '--poll-seconds': 0.0 is not in the range "
            "0<x<=86400.0. (see 'cairnloop worker --help')",
        ),
        (
            ["--stop-grace", "-1"],
            "Error: Invalid value for '--stop-grace': -1.0 is not in the range "
            "0<=x<=86400.0. (see 'cairnloop worker --help')",
        ),
        # Waits longer than a day overflow the platform's timeouts; NaN and
        # infinity are no number of seconds at all.
        (
            ["--poll-seconds", "1e300"],
            "Error: Invalid value for '--poll-seconds': 1e+300 is not in the "
            "range 0<x<=86400.0. (see 'cairnloop worker --help')",
        ),
        (
            ["--poll-seconds", "inf"],
            "Error: Invalid value for '--poll-seconds': inf is not in the range "
            "0<x<=86400.0. (see 'cairnloop worker --help')",
        ),
        (
            ["--poll-seconds", "nan"],
            "Error: Invalid value for '--poll-seconds': nan is not a number of "
            "seconds (see 'cairnloop worker --help')",
        ),
        (
            ["--lease-margin", "nan"],
            "Error: Invalid value for '--lease-margin': nan is not a number of "
            "seconds (see 'cairnloop worker --help')",
        ),
        (
            ["--stop-grace", "inf"],
            "Error: Invalid value for '--stop-grace': inf is not in the range "
            "0<=x<=86400.0. (see 'cairnloop worker --help')",
        ),
        (
            ["--batch-size", "0"],
            "Error: Invalid value for '--batch-size': 0 is not in the range "
            "1<=x<=1000. (see 'cairnloop worker --help')",
        ),
    ],
)
def test_worker_refuses_bad_options_with_one_line_and_exit_2(
    sqlite_url: str, option: list[str], message: str
) -> None:
    done = run_cli("worker", "--once", *option, env=cli_env(sqlite_url))

    assert (done.returncode, done.stdout, done.stderr) == (2, "", message + "\n")
