"""Measurement 2: executor throughput, worker processes draining approved
internal_note proposals."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, event

from benchmarks.places import DATABASE_KINDS, CheckFailed, Places
from benchmarks.processes import child_command, run_together
from benchmarks.sizes import Sizes
from benchmarks.timing import rate
from benchmarks.workload import CONVERSATION, approve_all, open_app, propose_notes
from cairnloop_core.worker import Worker

__all__ = ["measure"]

logger = logging.getLogger(__name__)

WARMUP_STEPS = 5


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Drain ``sizes.drain`` approved notes with 1 and 4 processes, per database.

    Each process runs ``Worker(app).run(once=True)``, the loop behind
    ``cairnloop worker --once``; the clock starts when every process is up
    and connected, so interpreter start and plugin discovery are not counted.
    A breakdown of single executor steps, in this process, says where the
    time of one step goes.
    """
    return {
        kind: {
            "runs": [_on(places, kind, sizes.drain, n) for n in sizes.worker_counts],
            "step_breakdown": _breakdown(places, kind, sizes.steps),
        }
        for kind in DATABASE_KINDS
    }


class StatementClock:
    """Adds up the statements an engine runs and the time spent inside them."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.seconds = 0.0
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.statements += 1
        self.seconds += time.perf_counter() - self._started


def _breakdown(places: Places, kind: str, count: int) -> dict[str, Any]:
    """Time ``count`` executor steps, split into statements and the rest, then
    ``count`` proposals drained through the ``worker --once`` loop.

    Time "in statements" runs from handing a statement to the driver to
    getting its result back; commits are outside it, as are building the
    statements and the Python work of the re-check and the tool.
    """
    with places.fresh_database(kind, "breakdown") as url:
        app = open_app(url)
        try:
            approve_all(app, propose_notes(app, count + WARMUP_STEPS))
            for _ in range(WARMUP_STEPS):
                app.run_once()
            clock = StatementClock(app.engine)
            started = time.perf_counter()
            for _ in range(count):
                app.run_once()
            elapsed = time.perf_counter() - started
            stepped = (clock.statements, clock.seconds)

            approve_all(app, propose_notes(app, count))
            before_loop = clock.statements
            started = time.perf_counter()
            handled = Worker(app).run(once=True)
            looped = time.perf_counter() - started
            loop_statements = clock.statements - before_loop
        finally:
            app.close()
    if handled != count:
        raise CheckFailed(f"the worker loop handled {handled} of {count} notes")
    statements, seconds = stepped
    return {
        "steps": count,
        "ms_per_step": round(elapsed / count * 1000, 3),
        "statements_per_step": round(statements / count, 2),
        "ms_in_statements_per_step": round(seconds / count * 1000, 3),
        "ms_per_statement": round(seconds / max(statements, 1) * 1000, 3),
        "ms_outside_statements_per_step": round((elapsed - seconds) / count * 1000, 3),
        "worker_loop_ms_per_proposal": round(looped / count * 1000, 3),
        "worker_loop_statements_per_proposal": round(loop_statements / count, 2),
    }


def _on(places: Places, kind: str, count: int, processes: int) -> dict[str, Any]:
    with places.fresh_database(kind, f"drain{processes}") as url:
        app = open_app(url)
        try:
            approve_all(app, propose_notes(app, count))
        finally:
            app.close()

        together = run_together(
            [child_command("cairnloop", url) for _ in range(processes)]
        )

        app = open_app(url, prepare=False)
        try:
            statuses = app.count_by_status()
            notes = len(app.messages(CONVERSATION))
        finally:
            app.close()

    if statuses != {"succeeded": count} or notes != count:
        raise CheckFailed(
            f"draining {count} proposals left {statuses} and {notes} notes"
        )
    result = {
        "processes": processes,
        "count": count,
        "seconds": round(together.seconds, 3),
        "per_second": rate(count, together.seconds),
        "handled_per_process": [r.handled for r in together.reports],
    }
    logger.info(
        "executor on %s with %d process(es): %s proposals/s",
        kind,
        processes,
        result["per_second"],
        extra={"event": "bench_drain_measured"},
    )
    return result
