"""Engines for SQLite and PostgreSQL, the database URL, and schema migrations."""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from cairnloop_core.errors import ConfigurationError

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "create_database_engine",
    "current_revision",
    "downgrade_schema",
    "prepare_engine",
    "resolve_database_url",
    "upgrade_schema",
]

logger = logging.getLogger(__name__)

DATABASE_URL_ENV = "CAIRNLOOP_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///cairnloop.db"
VERSION_TABLE = "cairnloop_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_prepared_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def resolve_database_url(url: str | None = None) -> str:
    """The URL given, else ``CAIRNLOOP_DATABASE_URL``, else ``cairnloop.db`` here."""
    chosen = url or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
    if chosen.startswith(("postgresql://", "postgres://")):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def create_database_engine(url: str | None = None, **options: Any) -> Engine:
    """Create an engine Cairnloop can use, from a URL or the environment.

    Raises ``ConfigurationError`` for a URL SQLAlchemy cannot use.
    """
    resolved = resolve_database_url(url)
    try:
        parsed = make_url(resolved)
    except ArgumentError:
        raise ConfigurationError(
            f"database URL {resolved!r} is not a valid URL; use e.g. "
            "'sqlite:///cairnloop.db' or 'postgresql+psycopg://host/db'."
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database {parsed.get_backend_name()!r} is not supported; "
            "use SQLite or PostgreSQL."
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    ):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigurationError(
                f"the folder {str(folder)!r} for the SQLite database does not exist; "
                "create it or choose another path."
            )
    try:
        engine = create_engine(parsed, **options)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(f"cannot use database URL: {exc}") from None
    return prepare_engine(engine)


def prepare_engine(engine: Engine) -> Engine:
    """Make an engine safe for Cairnloop; idempotent, also for a host's engine.

    On SQLite this turns on WAL and foreign keys, sets a busy timeout and
    starts every transaction with ``BEGIN IMMEDIATE`` so that writers queue
    on the database lock instead of failing half-way.
    """
    if engine.dialect.name != "sqlite" or engine in _prepared_engines:
        return engine
    _prepared_engines.add(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade Cairnloop's tables to ``revision``."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)
    logger.info(
        "Database schema is at %s",
        revision,
        extra={"event": "schema_upgraded", "revision": revision},
    )


def downgrade_schema(engine: Engine, revision: str = "base") -> None:
    """Downgrade Cairnloop's tables to ``revision`` (``base`` drops them)."""
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The applied migration revision, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        )
        return context.get_current_revision()
