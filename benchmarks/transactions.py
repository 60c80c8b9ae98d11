"""Measurement 4: transactions per governed action, counted by the database.

PostgreSQL: the deltas of ``xact_commit + xact_rollback`` in
``pg_stat_database`` for the benchmark database, read after every session
has closed. Each session flushes its statistics just before it closes
(``pg_stat_force_next_flush()``, one transaction) and costs one more at its
start (the backend's own start-up transaction), so two transactions per new
session are subtracted; the method is checked first on a known number of
transactions, and on a window in which nothing runs.

SQLite: every statement SQLite executes is traced through ``sqlite3``'s
``set_trace_callback`` on each connection; ``BEGIN`` statements are counted,
plus any statement run outside a transaction (its own implicit one). Every
statement is counted too, as the number of round trips a stage makes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import Engine, event

from benchmarks.places import (
    BenchError,
    CheckFailed,
    Places,
    Postgres,
    flush_statistics,
)
from benchmarks.sizes import Sizes
from benchmarks.workload import approve_all, open_app, propose_notes
from cairnloop_core import Cairnloop
from cairnloop_core.database import create_database_engine
from cairnloop_core.worker import Worker

__all__ = ["SqliteStatementCounter", "measure"]

logger = logging.getLogger(__name__)

CALIBRATION_COMMITS = 7
CALIBRATION_ROLLBACKS = 3
# A session's start-up transaction and its statistics flush before closing.
TRANSACTIONS_PER_SESSION = 2


class SqliteStatementCounter:
    """Counts transactions from the statements SQLite reports executing."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()
        self.counts = {
            "begin": 0,
            "commit": 0,
            "rollback": 0,
            "implicit": 0,
            "statements": 0,
        }
        event.listen(engine, "connect", self._attach)

    def _attach(self, dbapi_connection: Any, _record: Any) -> None:
        key = id(dbapi_connection)

        def trace(statement: str) -> None:
            self._see(key, statement)

        dbapi_connection.set_trace_callback(trace)

    def _see(self, key: int, statement: str) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement else ""
        with self._lock:
            self.counts["statements"] += 1
            if verb == "BEGIN":
                self.counts["begin"] += 1
                self._open.add(key)
            elif verb in ("COMMIT", "END"):
                self.counts["commit"] += 1
                self._open.discard(key)
            elif verb == "ROLLBACK" and "TO" not in statement.upper().split():
                self.counts["rollback"] += 1
                self._open.discard(key)
            elif verb not in ("PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK") and (
                key not in self._open
            ):
                self.counts["implicit"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Count each stage of ``sizes.transactions`` approval-required notes."""
    postgres = places.require_postgres()
    return {
        "sqlite": _on_sqlite(places, sizes.transactions),
        "postgresql": _on_postgres(postgres, sizes.transactions),
    }


# -- the stages ------------------------------------------------------------------


Window = Callable[[], contextlib.AbstractContextManager[dict[str, int]]]


def _stages(app: Cairnloop, count: int, counted: Window) -> dict[str, Any]:
    """Run each stage inside ``counted()``; turn totals into per-action figures."""
    totals: dict[str, dict[str, int]] = {}

    with counted() as totals["propose"]:
        ids = propose_notes(app, count)
    with counted() as totals["decide"]:
        approve_all(app, ids)
    with counted() as totals["execute"]:
        outcomes = [app.run_once() for _ in ids]
    if [o.status if o else None for o in outcomes] != ["succeeded"] * count:
        raise CheckFailed(f"executing {count} approved notes gave {outcomes}")

    looped = propose_notes(app, count)
    approve_all(app, looped)
    with counted() as totals["worker_once_loop"]:
        handled = Worker(app).run(once=True)
    if handled != count:
        raise CheckFailed(f"the worker loop handled {handled} of {count} notes")

    stages = {name: _per_action(total, count) for name, total in totals.items()}
    total = sum(stages[name]["per_action"] for name in ("propose", "decide", "execute"))
    return {"actions": count, "stages": stages, "per_action_total": round(total, 3)}


def _per_action(total: dict[str, int], count: int) -> dict[str, Any]:
    figures = {
        "transactions": total["transactions"],
        "per_action": round(total["transactions"] / count, 3),
        "raw": {k: v for k, v in total.items() if k != "transactions"},
    }
    if "statements" in total:
        figures["statements_per_action"] = round(total["statements"] / count, 3)
    return figures


# -- SQLite ------------------------------------------------------------------------


def _on_sqlite(places: Places, count: int) -> dict[str, Any]:
    with places.fresh_database("sqlite", "transactions") as url:
        engine = create_database_engine(url)
        counter = SqliteStatementCounter(engine)
        app = open_app(engine=engine)

        @contextlib.contextmanager
        def counted() -> Iterator[dict[str, int]]:
            before = counter.snapshot()
            delta: dict[str, int] = {}
            yield delta
            after = counter.snapshot()
            delta.update({k: after[k] - before[k] for k in after})
            delta["transactions"] = delta["begin"] + delta["implicit"]

        try:
            result = _stages(app, count, counted)
        finally:
            app.close()
            engine.dispose()
    result["method"] = "sqlite3 trace callback: BEGIN + statements outside one"
    _log("sqlite", result)
    return result


# -- PostgreSQL ------------------------------------------------------------------


def _on_postgres(postgres: Postgres, count: int) -> dict[str, Any]:
    calibration = _calibrate(postgres)
    with postgres.fresh_schema("transactions") as schema:
        app = open_app(postgres.sqlalchemy_url(schema))
        event.listen(app.engine, "close", _flush_before_close)

        @contextlib.contextmanager
        def counted() -> Iterator[dict[str, int]]:
            app.engine.dispose()
            before = postgres.transaction_counters()
            delta: dict[str, int] = {}
            yield delta
            app.engine.dispose()
            after = postgres.transaction_counters()
            delta.update({k: after[k] - before[k] for k in after})
            delta["transactions"] = _transactions(delta)

        try:
            idle = _idle_window(counted)
            result = _stages(app, count, counted)
        finally:
            app.close()
    result["method"] = (
        "pg_stat_database: delta of xact_commit + xact_rollback, "
        f"minus {TRANSACTIONS_PER_SESSION} per new session"
    )
    result["calibration"] = calibration
    result["idle_window_transactions"] = idle
    _log("postgresql", result)
    return result


def _flush_before_close(dbapi_connection: Any, _record: Any) -> None:
    flush_statistics(dbapi_connection)


def _transactions(delta: dict[str, int]) -> int:
    sessions = delta["sessions"] * TRANSACTIONS_PER_SESSION
    return delta["commits"] + delta["rollbacks"] - sessions


def _idle_window(counted: Window) -> int:
    with counted() as delta:
        pass
    if delta["transactions"] != 0:
        raise BenchError(
            f"{delta['transactions']} transaction(s) reached the benchmark database "
            "while nothing ran; another client (or autovacuum) is using it. "
            "Stop it and run again."
        )
    return delta["transactions"]


def _calibrate(postgres: Postgres) -> dict[str, Any]:
    """Check the counting method on a known number of transactions.

    Automatic preparing is off here because psycopg answers a ROLLBACK after
    it prepared statements with a DEALLOCATE ALL of its own, a transaction
    more; in the measured stages that is real work and is counted.
    """
    known = CALIBRATION_COMMITS + CALIBRATION_ROLLBACKS
    before = postgres.transaction_counters()
    with psycopg.connect(postgres.dsn(), prepare_threshold=None) as connection:
        for index in range(known):
            connection.execute("SELECT 1")
            if index < CALIBRATION_COMMITS:
                connection.commit()
            else:
                connection.rollback()
        flush_statistics(connection)
    after = postgres.transaction_counters()
    delta = {k: after[k] - before[k] for k in after}
    counted = _transactions(delta)
    if counted != known:
        raise BenchError(
            f"counting {known} known transactions through pg_stat_database gave "
            f"{counted} ({delta}); the transaction counts would be wrong."
        )
    return {"known": known, "counted": counted, "raw": delta}


def _log(kind: str, result: dict[str, Any]) -> None:
    stages = result["stages"]
    logger.info(
        "transactions per action on %s: propose %s, decide %s, execute %s",
        kind,
        stages["propose"]["per_action"],
        stages["decide"]["per_action"],
        stages["execute"]["per_action"],
        extra={"event": "bench_transactions_measured"},
    )
