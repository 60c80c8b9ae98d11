"""Measurement 1: propose throughput and latency through the Cairnloop facade."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from benchmarks.places import DATABASE_KINDS, CheckFailed, Places
from benchmarks.sizes import Sizes
from benchmarks.timing import latency_summary, rate
from benchmarks.workload import AGENT, TOOL, note_input, open_app, propose_notes

__all__ = ["measure"]

logger = logging.getLogger(__name__)


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Propose ``sizes.propose`` distinct notes one after another, per database."""
    return {kind: _on(places, kind, sizes) for kind in DATABASE_KINDS}


def _on(places: Places, kind: str, sizes: Sizes) -> dict[str, Any]:
    with places.fresh_database(kind, "propose") as url:
        app = open_app(url)
        try:
            propose_notes(app, sizes.warmup)

            tag = uuid.uuid4().hex[:8]
            durations = []
            started = time.perf_counter()
            for index in range(sizes.propose):
                before = time.perf_counter()
                app.propose(TOOL, actor=AGENT, input=note_input(index, tag))
                durations.append(time.perf_counter() - before)
            elapsed = time.perf_counter() - started

            pending = app.count_by_status().get("pending", 0)
        finally:
            app.close()

    expected = sizes.propose + sizes.warmup
    if pending != expected:
        raise CheckFailed(f"expected {expected} pending proposals, found {pending}")
    result = {
        "count": sizes.propose,
        "seconds": round(elapsed, 3),
        "per_second": rate(sizes.propose, elapsed),
        **latency_summary(durations),
    }
    logger.info(
        "propose on %s: %s/s, p50 %s ms, p99 %s ms",
        kind,
        result["per_second"],
        result["p50_ms"],
        result["p99_ms"],
        extra={"event": "bench_propose_measured"},
    )
    return result
