"""Measurement 5: the database's own limit, single-row insert commits per second
through the drivers, with no Cairnloop code in the way."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

import psycopg

from benchmarks.places import CheckFailed, Places
from benchmarks.sizes import Sizes
from benchmarks.timing import rate
from cairnloop_core.database import SQLITE_BUSY_TIMEOUT_MS

__all__ = ["measure"]

logger = logging.getLogger(__name__)

PAYLOAD = "x" * 64
INSERT_SQLITE = "INSERT INTO raw_inserts (payload) VALUES (?)"
INSERT_POSTGRES = "INSERT INTO raw_inserts (payload) VALUES (%s)"
PARALLEL_CONNECTIONS = 4


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Insert ``sizes.raw_inserts`` rows, each in its own committed transaction.

    SQLite runs one connection (it has one writer); PostgreSQL runs one
    connection and, for the 4-process comparison, four in parallel threads.
    """
    result = {"sqlite": {"connections_1": _sqlite(places, sizes)}}
    result["postgresql"] = {
        f"connections_{n}": _postgres(places, sizes, n)
        for n in (1, PARALLEL_CONNECTIONS)
    }
    result["postgresql"]["round_trips"] = _round_trips(places, sizes)
    for kind, variants in result.items():
        for name, figures in variants.items():
            logger.info(
                "raw insert commits on %s (%s): %s/s",
                kind,
                name,
                figures["per_second"],
                extra={"event": "bench_raw_limit_measured"},
            )
    return result


def _sqlite(places: Places, sizes: Sizes) -> dict[str, Any]:
    path = places.scratch / "raw-limit.db"
    # The file settings Cairnloop's engine uses; autocommit, so each insert
    # is its own transaction.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(
            "CREATE TABLE raw_inserts (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"
        )
        for _ in range(sizes.warmup):
            connection.execute(
                "INSERT INTO raw_inserts (payload) VALUES (?)", (PAYLOAD,)
            )

        started = time.perf_counter()
        for _ in range(sizes.raw_inserts):
            connection.execute(
                "INSERT INTO raw_inserts (payload) VALUES (?)", (PAYLOAD,)
            )
        elapsed = time.perf_counter() - started
        (rows,) = connection.execute("SELECT count(*) FROM raw_inserts").fetchone()
    finally:
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)

    if rows != sizes.raw_inserts + sizes.warmup:
        raise CheckFailed(f"expected {sizes.raw_inserts} raw rows, found {rows}")
    return _figures(sizes.raw_inserts, 1, elapsed)


def _postgres(places: Places, sizes: Sizes, connections: int) -> dict[str, Any]:
    postgres = places.require_postgres()
    with postgres.fresh_schema(f"raw{connections}") as schema:
        dsn = postgres.dsn(schema=schema)
        with postgres.connect(schema) as setup:
            setup.execute(
                "CREATE TABLE raw_inserts "
                "(id bigserial PRIMARY KEY, payload text NOT NULL)"
            )

        share = sizes.raw_inserts // connections
        opened = [psycopg.connect(dsn, autocommit=True) for _ in range(connections)]
        try:
            for connection in opened:
                _insert(connection, sizes.warmup)
            threads = [
                threading.Thread(target=_insert, args=(connection, share))
                for connection in opened
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            for connection in opened:
                connection.close()

        with psycopg.connect(dsn, autocommit=True) as check:
            (rows,) = check.execute("SELECT count(*) FROM raw_inserts").fetchone() or (
                0,
            )

    expected = (share + sizes.warmup) * connections
    if rows != expected:
        raise CheckFailed(f"expected {expected} raw rows, found {rows}")
    return _figures(share * connections, connections, elapsed)


def _round_trips(places: Places, sizes: Sizes) -> dict[str, Any]:
    """``SELECT 1`` in autocommit: one round trip and no write, for scale."""
    postgres = places.require_postgres()
    with postgres.connect() as connection:
        for _ in range(sizes.warmup):
            connection.execute("SELECT 1")
        started = time.perf_counter()
        for _ in range(sizes.raw_inserts):
            connection.execute("SELECT 1")
        elapsed = time.perf_counter() - started
    figures = _figures(sizes.raw_inserts, 1, elapsed)
    figures["statement"] = "SELECT 1"
    return figures


def _insert(connection: psycopg.Connection, count: int) -> None:
    for _ in range(count):
        connection.execute(INSERT_POSTGRES, (PAYLOAD,))


def _figures(count: int, connections: int, seconds: float) -> dict[str, Any]:
    return {
        "connections": connections,
        "count": count,
        "seconds": round(seconds, 3),
        "per_second": rate(count, seconds),
    }
