"""Measurement 6: the peer, Procrastinate, deferring and executing no-op jobs on
the same PostgreSQL server, in a database of its own."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from typing import Any

import psycopg

from benchmarks.child import PEER_TASK
from benchmarks.places import BenchError, CheckFailed, Places, Postgres
from benchmarks.processes import child_command, run_together
from benchmarks.sizes import Sizes
from benchmarks.timing import rate

__all__ = ["PEER_DATABASE_SUFFIX", "measure"]

logger = logging.getLogger(__name__)

PEER_DATABASE_SUFFIX = "procrastinate"


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Defer ``sizes.peer_jobs`` jobs one by one, then drain them with workers.

    Variants: one process at concurrency 1 and four processes at concurrency
    1 (the same shapes as Cairnloop's worker processes), and one process at
    concurrency 4 (Procrastinate's own way of running jobs in parallel).
    """
    try:
        version = importlib.metadata.version("procrastinate")
    except importlib.metadata.PackageNotFoundError:
        raise BenchError(
            "Procrastinate is not installed; run "
            "'.venv/bin/pip install -e \".[dev,bench]\"'."
        ) from None
    postgres = places.require_postgres()
    variants = [(n, 1) for n in sizes.worker_counts] + [(1, 4)]
    try:
        runs = [_on(postgres, sizes.peer_jobs, p, c) for p, c in variants]
    finally:
        postgres.drop_peer_database(PEER_DATABASE_SUFFIX)
    return {"postgresql": {"procrastinate_version": version, "runs": runs}}


def _on(
    postgres: Postgres, count: int, processes: int, concurrency: int
) -> dict[str, Any]:
    import procrastinate

    database = postgres.recreate_peer_database(PEER_DATABASE_SUFFIX)
    dsn = postgres.dsn(database)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name=PEER_TASK)
    async def noop() -> None:
        return None

    with app.open():
        app.schema_manager.apply_schema()
        started = time.perf_counter()
        for _ in range(count):
            noop.defer()
        deferred = time.perf_counter() - started

    together = run_together(
        [
            child_command("procrastinate", dsn, str(concurrency))
            for _ in range(processes)
        ]
    )

    with psycopg.connect(dsn) as connection:
        statuses: dict[str, int] = dict(
            connection.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"
            ).fetchall()
        )
    if statuses != {"succeeded": count}:
        raise CheckFailed(f"Procrastinate left its {count} jobs as {statuses}")
    result = {
        "processes": processes,
        "concurrency": concurrency,
        "count": count,
        "defer_seconds": round(deferred, 3),
        "defer_per_second": rate(count, deferred),
        "seconds": round(together.seconds, 3),
        "per_second": rate(count, together.seconds),
    }
    logger.info(
        "Procrastinate with %d process(es) x concurrency %d: %s jobs/s",
        processes,
        concurrency,
        result["per_second"],
        extra={"event": "bench_peer_measured"},
    )
    return result
