"""Telemetry reports only what has committed: log lines with stable event
names, and OpenTelemetry spans and counters when the API is installed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from executor_support import TESTS_DIR, Apps, approved
from sqlalchemy import create_engine, select

from cairnloop_core import Registry
from cairnloop_core.schema import proposals


def probe(database_url: str, *flags: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(TESTS_DIR / "telemetry_probe.py"), database_url, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS_DIR,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_runs_are_traced_and_committed_events_counted_with_opentelemetry(
    tmp_path: Path,
) -> None:
    report = probe(f"sqlite:///{tmp_path / 'otel.db'}")

    assert report["otel_available"] is True
    assert report["statuses"] == ["succeeded", "failed"]
    runs = {
        s["attributes"]["tool"]: s
        for s in report["spans"]
        if s["name"] == "cairnloop.run"
    }
    works, refuses = runs["works"], runs["refuses"]
    (tool_span,) = [s for s in report["spans"] if s["name"] == "probe.call"]
    assert works["attributes"] == {"tool": "works", "proposal_id": 1, "attempt": 1}
    assert works["status"] == "UNSET"
    assert (refuses["status"], refuses["description"]) == (
        "ERROR",
        "the ticket is closed",
    )
    # The tool's own span, on the run's thread, is a child of the run's span.
    assert tool_span["parent_id"] == works["span_id"]
    assert report["counts"] == {
        "proposal_created/works": 1,
        "proposal_approved/works": 1,
        "proposal_started/works": 1,
        "proposal_succeeded/works": 1,
        "proposal_created/refuses": 1,
        "proposal_approved/refuses": 1,
        "proposal_failed/refuses": 1,
    }


def test_without_the_opentelemetry_api_the_executor_runs_and_records_nothing_extra(
    tmp_path: Path,
) -> None:
    report = probe(f"sqlite:///{tmp_path / 'plain.db'}", "--hide-otel")

    assert report == {"otel_available": False, "statuses": ["succeeded", "failed"]}


class StatusAtLogTime(logging.Handler):
    """Reads the proposal's status from a separate connection the moment a
    lifecycle line is logged, to prove the line follows the commit."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.engine = create_engine(database_url)
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", "")
        proposal_id = getattr(record, "proposal_id", None)
        if not event.startswith("proposal_") or proposal_id is None:
            return
        with self.engine.connect() as connection:
            status = connection.execute(
                select(proposals.c.status).where(proposals.c.id == proposal_id)
            ).scalar_one()
            connection.rollback()
        self.seen.append((event, status))


def test_lifecycle_lines_are_logged_only_after_their_commit(
    database_url: str, registry: Registry
) -> None:
    apps = Apps(database_url)
    watcher = StatusAtLogTime(database_url)
    events_logger = logging.getLogger("cairnloop_core.events")
    events_logger.addHandler(watcher)
    previous = events_logger.level
    events_logger.setLevel(logging.INFO)
    try:
        app = apps.open(registry)
        app.create_conversation("c-1")
        approved(app, "internal_note", {"conversation_id": "c-1", "content": "hi"})
        app.drain()
    finally:
        events_logger.removeHandler(watcher)
        events_logger.setLevel(previous)
        watcher.engine.dispose()
        apps.close()

    assert watcher.seen == [
        ("proposal_created", "pending"),
        ("proposal_approved", "approved"),
        ("proposal_succeeded", "succeeded"),
    ]
