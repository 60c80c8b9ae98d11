"""Databases for internal_note's tests: a fresh SQLite file, and a fresh
PostgreSQL schema on the server named by ``CAIRNLOOP_TEST_POSTGRES_URL``.

Without a reachable server the PostgreSQL cases are skipped, unless
``CAIRNLOOP_REQUIRE_POSTGRES=1`` turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cairnloop_core import Cairnloop, Registry

POSTGRES_URL = os.environ.get(
    "CAIRNLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)


def _postgres_schema_url() -> Iterator[str]:
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as connection:
            schema = f"note_test_{uuid.uuid4().hex[:12]}"
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        engine.dispose()
        problem = f"PostgreSQL at {POSTGRES_URL} is unreachable: {type(exc).__name__}"
        if os.environ.get("CAIRNLOOP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{problem} (CAIRNLOOP_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(problem)
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def note_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that asks for it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notes.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def note_app(note_database_url: str) -> Iterator[Cairnloop]:
    """A facade on a fresh, upgraded database with only internal_note loaded."""
    registry = Registry.discover(allow=["internal_note"], block=[])
    with Cairnloop(note_database_url, registry=registry) as app:
        app.upgrade()
        yield app
