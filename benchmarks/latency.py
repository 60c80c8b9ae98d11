"""Measurement 3: approve-to-succeeded latency with an idle embedded worker.

The clock starts just before ``approve`` is called and stops when the
executor reports ``proposal_succeeded``: the core logs that event on the
``cairnloop_core.events`` logger only after the outcome's transaction has
committed, so a logging handler timestamps the moment the row is succeeded
without polling the database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.places import CheckFailed, Places
from benchmarks.sizes import Sizes
from benchmarks.timing import latency_summary
from benchmarks.workload import OPERATOR, open_app, propose_notes
from cairnloop_core import Cairnloop
from cairnloop_core.worker import Worker

__all__ = ["measure"]

logger = logging.getLogger(__name__)

EVENTS_LOGGER = "cairnloop_core.events"
IDLE_SECONDS = 0.05
SUCCESS_TIMEOUT_SECONDS = 30.0

# How the worker learns of an approval in each variant.
VARIANTS = (
    ("sqlite", "in_process"),
    ("postgresql", "notify"),
    ("postgresql", "in_process"),
)


class SuccessWatch(logging.Handler):
    """Timestamps the ``proposal_succeeded`` event of one awaited proposal."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._awaited: int | None = None
        self._arrived = threading.Event()
        self.at = 0.0

    def expect(self, proposal_id: int) -> None:
        self._arrived.clear()
        self._awaited = proposal_id

    def emit(self, record: logging.LogRecord) -> None:
        if (
            getattr(record, "event", None) == "proposal_succeeded"
            and getattr(record, "proposal_id", None) == self._awaited
        ):
            self.at = time.perf_counter()
            self._arrived.set()

    def wait(self) -> bool:
        return self._arrived.wait(SUCCESS_TIMEOUT_SECONDS)


@contextlib.contextmanager
def watching() -> Iterator[SuccessWatch]:
    watch = SuccessWatch()
    events = logging.getLogger(EVENTS_LOGGER)
    level, propagate = events.level, events.propagate
    events.setLevel(logging.INFO)
    events.propagate = False
    events.addHandler(watch)
    try:
        yield watch
    finally:
        events.removeHandler(watch)
        events.setLevel(level)
        events.propagate = propagate


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Approve notes one at a time and time each to ``succeeded``.

    ``in_process``: the worker runs on the deciding facade, so ``approve``
    wakes it directly (on PostgreSQL a NOTIFY is sent as well).
    ``notify``: the worker runs on a second facade in the same process and
    hears of the approval only through PostgreSQL LISTEN/NOTIFY.
    """
    results: dict[str, Any] = {}
    for kind, wake in VARIANTS:
        results.setdefault(kind, {})[wake] = _on(places, kind, wake, sizes)
    return results


def _on(places: Places, kind: str, wake: str, sizes: Sizes) -> dict[str, Any]:
    with places.fresh_database(kind, f"latency_{wake}") as url:
        app = open_app(url)
        worker_app = app if wake == "in_process" else open_app(url, prepare=False)
        try:
            ids = propose_notes(app, sizes.warmup + sizes.latency)
            worker = Worker(worker_app).start()
            try:
                durations, approvals = _approve_each(app, ids, sizes.warmup)
            finally:
                worker.stop()
            statuses = app.count_by_status()
        finally:
            if worker_app is not app:
                worker_app.close()
            app.close()

    if statuses != {"succeeded": len(ids)}:
        raise CheckFailed(f"latency run left {statuses}")
    approve = latency_summary(approvals)
    result = {
        "wake": wake,
        "idle_ms": IDLE_SECONDS * 1000,
        **latency_summary(durations),
        "approve_call_p50_ms": approve["p50_ms"],
        "approve_call_p99_ms": approve["p99_ms"],
    }
    logger.info(
        "approve-to-succeeded on %s (%s): p50 %s ms, p99 %s ms",
        kind,
        wake,
        result["p50_ms"],
        result["p99_ms"],
        extra={"event": "bench_latency_measured"},
    )
    return result


def _approve_each(
    app: Cairnloop, ids: list[int], warmup: int
) -> tuple[list[float], list[float]]:
    """Approve each proposal in turn; return the latencies and the durations of
    the approve calls themselves."""
    durations: list[float] = []
    approvals: list[float] = []
    pause = threading.Event()
    with watching() as watch:
        for position, proposal_id in enumerate(ids):
            # Let the worker finish its look for more work and fall idle.
            pause.wait(IDLE_SECONDS)
            watch.expect(proposal_id)
            started = time.perf_counter()
            app.approve(proposal_id, actor=OPERATOR)
            approved = time.perf_counter()
            if not watch.wait():
                raise CheckFailed(
                    f"proposal {proposal_id} did not succeed within "
                    f"{SUCCESS_TIMEOUT_SECONDS:g} s of its approval"
                )
            if position >= warmup:
                durations.append(watch.at - started)
                approvals.append(approved - started)
    return durations, approvals
