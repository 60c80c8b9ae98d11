"""Databases for the suite: a fresh SQLite file, and a fresh PostgreSQL schema
when the server is reachable.

PostgreSQL is found at ``CAIRNLOOP_TEST_POSTGRES_URL`` (default: the local
server, database ``test``). Without it the PostgreSQL tests are skipped with
the reason, unless ``CAIRNLOOP_REQUIRE_POSTGRES=1`` (as in CI), which turns
an unreachable server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from cairnloop_core import Cairnloop, Registry, Settings

POSTGRES_URL = os.environ.get(
    "CAIRNLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("CAIRNLOOP_REQUIRE_POSTGRES") == "1"

_postgres_problem: str | None = None
_postgres_checked = False


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or ``None`` when it can."""
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("select 1"))
            engine.dispose()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _postgres_problem = f"PostgreSQL at {POSTGRES_URL} is unreachable: {first}"
    return _postgres_problem


def pytest_report_header(config: pytest.Config) -> str:
    problem = postgres_problem()
    if problem is None:
        return f"cairnloop: PostgreSQL tests run against {POSTGRES_URL}"
    return f"cairnloop: PostgreSQL tests SKIPPED - {problem}"


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"{problem} (CAIRNLOOP_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search path is a fresh, empty schema, dropped afterwards."""
    require_postgres()
    schema = f"cl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'cairnloop.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that asks for it runs once on SQLite and once on PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def registry() -> Registry:
    """The plugins installed in this environment (internal_note among them)."""
    return Registry.discover(allow=None, block=())


@pytest.fixture
def app(database_url: str, registry: Registry) -> Iterator[Cairnloop]:
    """A facade on a fresh, upgraded database with the installed plugins."""
    with Cairnloop(database_url, registry=registry, settings=Settings()) as instance:
        instance.upgrade()
        yield instance


@pytest.fixture
def apps(database_url: str) -> Iterator[object]:
    """Facades on one fresh database, each with its own registry, closed after."""
    from executor_support import Apps

    opened = Apps(database_url)
    yield opened
    opened.close()
