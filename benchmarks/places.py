"""Where the benchmarks run: a scratch folder for SQLite files and a PostgreSQL
database of their own, with one fresh schema per measurement."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL, make_url

__all__ = [
    "DATABASE_KINDS",
    "POSTGRES_URL_ENV",
    "BenchError",
    "CheckFailed",
    "Places",
    "Postgres",
    "flush_statistics",
]

logger = logging.getLogger(__name__)

POSTGRES_URL_ENV = "CAIRNLOOP_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://127.0.0.1:5432/cairnloop_bench"
MAINTENANCE_DATABASE = "postgres"
SCHEMA_PREFIX = "bench_"
SHARED_DATABASES = {"postgres", "test", "template0", "template1"}
DATABASE_KINDS = ("sqlite", "postgresql")
BACKENDS_GONE_SECONDS = 30.0


class BenchError(Exception):
    """The benchmarks cannot run; the message says why and what to do."""


class CheckFailed(Exception):
    """A measurement's result failed its check, so its figures are not kept."""


def flush_statistics(connection: Any) -> None:
    """Make this session's pending statistics visible in ``pg_stat_database``.

    ``pg_stat_force_next_flush()`` (PostgreSQL 15+) makes the backend flush
    when it next goes idle, which it does before answering, so the flush is
    done when the call returns. The call is itself one committed transaction.
    """
    connection.execute("SELECT pg_stat_force_next_flush()")
    if not connection.autocommit:
        connection.commit()


class Postgres:
    """The benchmark database on one PostgreSQL server, and its neighbours.

    Everything the suite creates lives in the database named by
    ``CAIRNLOOP_BENCH_POSTGRES_URL`` (schemas prefixed ``bench_``) or in a
    peer database next to it; no other database is written to.
    """

    def __init__(self, url: str | None = None) -> None:
        raw = url or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
        try:
            parsed = make_url(raw)
        except Exception:
            raise BenchError(
                f"{POSTGRES_URL_ENV}={raw!r} is not a database URL; use e.g. "
                f"{DEFAULT_POSTGRES_URL!r}."
            ) from None
        if parsed.get_backend_name() != "postgresql" or not parsed.database:
            raise BenchError(
                f"{POSTGRES_URL_ENV} must name a PostgreSQL database, e.g. "
                f"{DEFAULT_POSTGRES_URL!r}."
            )
        if parsed.database in SHARED_DATABASES:
            raise BenchError(
                f"the benchmarks count transactions per database, so they need "
                f"a database of their own, not {parsed.database!r}; point "
                f"{POSTGRES_URL_ENV} at e.g. '.../cairnloop_bench'."
            )
        self.url: URL = parsed.set(drivername="postgresql+psycopg", query={})
        self.database = parsed.database
        self._admin: psycopg.Connection | None = None

    # -- connections -------------------------------------------------------------

    def dsn(self, database: str | None = None, schema: str | None = None) -> str:
        """A psycopg connection string for ``database`` (default: the bench one)."""
        url = self.url.set(drivername="postgresql", database=database or self.database)
        if schema is not None:
            url = url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    @contextlib.contextmanager
    def connect(self, schema: str | None = None) -> Iterator[psycopg.Connection]:
        """An autocommit connection to the benchmark database.

        Before it closes, the session's statistics are flushed, so that its
        transactions never reach ``pg_stat_database`` late.
        """
        connection = psycopg.connect(self.dsn(schema=schema), autocommit=True)
        try:
            yield connection
            flush_statistics(connection)
        finally:
            connection.close()

    def sqlalchemy_url(self, schema: str) -> str:
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    @property
    def admin(self) -> psycopg.Connection:
        """An autocommit connection to the maintenance database."""
        if self._admin is None or self._admin.closed:
            try:
                self._admin = psycopg.connect(
                    self.dsn(MAINTENANCE_DATABASE), autocommit=True, connect_timeout=5
                )
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise BenchError(
                    f"PostgreSQL at {self.url.render_as_string()} is unreachable "
                    f"({first}); start it or set {POSTGRES_URL_ENV}."
                ) from None
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()

    # -- databases and schemas ----------------------------------------------------

    def ensure_database(self) -> None:
        """Create the benchmark database if it is missing."""
        if not self._database_exists(self.database):
            self.admin.execute(f'CREATE DATABASE "{self.database}"')
            logger.info(
                "Created database %s",
                self.database,
                extra={"event": "bench_database_created"},
            )

    def recreate_peer_database(self, suffix: str) -> str:
        """Drop and create ``<bench database>_<suffix>``; return its name."""
        name = f"{self.database}_{suffix}"
        self.drop_peer_database(suffix)
        self.admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_peer_database(self, suffix: str) -> None:
        name = f"{self.database}_{suffix}"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _database_exists(self, name: str) -> bool:
        row = self.admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        return row is not None

    def drop_leftover_schemas(self) -> int:
        """Drop ``bench_*`` schemas an interrupted run left behind."""
        with self.connect() as connection:
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                    (SCHEMA_PREFIX + "%",),
                )
            ]
            for name in names:
                connection.execute(f'DROP SCHEMA "{name}" CASCADE')
        return len(names)

    @contextlib.contextmanager
    def fresh_schema(self, label: str) -> Iterator[str]:
        """Yield the name of a new, empty schema, dropped afterwards."""
        name = f"{SCHEMA_PREFIX}{label}_{uuid.uuid4().hex[:8]}"
        with self.connect() as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield name
        finally:
            with self.connect() as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    # -- facts ----------------------------------------------------------------------

    def server_facts(self) -> dict[str, str]:
        names = (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "autovacuum",
            "max_connections",
        )
        rows = self.admin.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
        facts = {
            name: setting if not unit else f"{setting} x {unit}"
            for name, setting, unit in rows
        }
        return dict(sorted(facts.items()))

    # -- transaction statistics -------------------------------------------------------

    def wait_for_no_backends(self) -> None:
        """Wait until no session is connected to the benchmark database."""
        deadline = time.monotonic() + BACKENDS_GONE_SECONDS
        while True:
            (count,) = self.admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                (self.database,),
            ).fetchone() or (0,)
            if count == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{count} session(s) stayed connected to {self.database!r} "
                    f"for {BACKENDS_GONE_SECONDS:g} s; the transaction count needs "
                    "the database to itself. Close other clients and run again."
                )
            time.sleep(0.005)

    def transaction_counters(self) -> dict[str, int]:
        """Committed and rolled-back transactions and sessions of the database.

        Exact only when every session that used the database flushed its
        statistics before closing (``flush_statistics``): a backend leaves
        ``pg_stat_activity`` a moment before its exit-time flush, so waiting
        for it to disconnect is not enough.
        """
        self.wait_for_no_backends()
        self.admin.execute("SELECT pg_stat_clear_snapshot()")
        row = self.admin.execute(
            "SELECT xact_commit, xact_rollback, sessions "
            "FROM pg_stat_database WHERE datname = %s",
            (self.database,),
        ).fetchone()
        if row is None:
            raise BenchError(f"pg_stat_database has no row for {self.database!r}.")
        commits, rollbacks, sessions = row
        return {"commits": commits, "rollbacks": rollbacks, "sessions": sessions}


class Places:
    """The scratch folder and, when asked for, the PostgreSQL database."""

    def __init__(self, postgres: Postgres | None) -> None:
        self.postgres = postgres
        self.scratch = Path(tempfile.mkdtemp(prefix="cairnloop-bench-"))

    def require_postgres(self) -> Postgres:
        if self.postgres is None:
            raise BenchError("this measurement needs PostgreSQL, which was not set up.")
        return self.postgres

    @contextlib.contextmanager
    def fresh_database(self, kind: str, label: str) -> Iterator[str]:
        """Yield a Cairnloop database URL for an empty database of ``kind``."""
        if kind == "sqlite":
            folder = self.scratch / f"{label}-{uuid.uuid4().hex[:8]}"
            folder.mkdir()
            try:
                yield f"sqlite:///{folder / 'cairnloop.db'}"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return
        postgres = self.require_postgres()
        with postgres.fresh_schema(label) as schema:
            yield postgres.sqlalchemy_url(schema)

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
