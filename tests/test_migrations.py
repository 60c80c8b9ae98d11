"""The shipped migrations: from empty, down to base and up again, and equal
to the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.database import (
    create_database_engine,
    current_revision,
    downgrade_schema,
    upgrade_schema,
)
from cairnloop_core.schema import metadata

VERSION_TABLE = "cairnloop_alembic_version"
HEAD = "0002"
TABLES = {
    "cairnloop_conversations",
    "cairnloop_events",
    "cairnloop_mcp_tokens",
    "cairnloop_messages",
    "cairnloop_proposals",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_database_engine(database_url)
    yield created
    created.dispose()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names()) - {VERSION_TABLE}


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            query = (
                "SELECT tgname FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid "
                "WHERE NOT tgisinternal "
                "AND relnamespace = current_schema()::regnamespace"
            )
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return {row[0] for row in connection.execute(text(query))}


def _only_cairnloop(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table":
        return bool(name) and name.startswith("cairnloop_") and name != VERSION_TABLE
    return True


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _only_cairnloop,
            },
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_from_an_empty_database_creates_every_table(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert _tables(engine) == set()

    upgrade_schema(engine)

    assert current_revision(engine) == HEAD
    assert _tables(engine) == TABLES


def test_upgrade_installs_the_append_only_triggers(engine: Engine) -> None:
    upgrade_schema(engine)

    if engine.dialect.name == "postgresql":
        expected = {"cairnloop_events_append_only", "cairnloop_events_no_truncate"}
    else:
        expected = {"cairnloop_events_no_update", "cairnloop_events_no_delete"}
    assert _triggers(engine) == expected


def test_upgrade_twice_changes_nothing(engine: Engine) -> None:
    upgrade_schema(engine)
    upgrade_schema(engine)

    assert current_revision(engine) == HEAD
    assert _differences(engine) == []


def test_models_match_the_migrations(engine: Engine) -> None:
    upgrade_schema(engine)

    assert _differences(engine) == []


def test_a_model_change_without_a_migration_is_noticed(engine: Engine) -> None:
    upgrade_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE cairnloop_messages ADD COLUMN extra INT"))

    differences = _differences(engine)

    assert [d[0] for d in differences] == ["remove_column"]  # type: ignore[index]


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(
    engine: Engine, database_url: str
) -> None:
    upgrade_schema(engine)

    downgrade_schema(engine, "base")

    assert current_revision(engine) is None
    assert _tables(engine) == set()
    assert _triggers(engine) == set()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            functions = connection.execute(
                text(
                    "SELECT count(*) FROM pg_proc "
                    "WHERE proname = 'cairnloop_refuse_event_change' "
                    "AND pronamespace = current_schema()::regnamespace"
                )
            ).scalar()
        assert functions == 0

    upgrade_schema(engine)

    assert current_revision(engine) == HEAD
    assert _tables(engine) == TABLES
    assert _differences(engine) == []
    with Cairnloop(engine=engine) as app:
        result = app.propose(
            "internal_note",
            actor=Actor("bot", "agent"),
            input={"conversation_id": "c", "content": "after the round trip"},
        )
        assert result.status == "pending"
        assert app.verify_audit() == (1, [])


def test_cli_db_upgrade_applies_the_migrations(database_url: str) -> None:
    from governance_support import run_cli

    result = run_cli(database_url, "db", "upgrade")

    assert (result.code, result.stdout, result.stderr) == (
        0,
        f"Database schema is at revision {HEAD}.\n",
        "",
    )
    engine = create_engine(database_url)
    try:
        assert _tables(engine) == TABLES
    finally:
        engine.dispose()


def test_host_engine_keeps_its_own_tables_and_gets_only_prefixed_ones(
    engine: Engine,
) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO orders (id) VALUES (7)"))

    with Cairnloop(engine=engine) as app:
        app.upgrade()
        app.propose(
            "internal_note",
            actor=Actor("bot", "agent"),
            input={"conversation_id": "c", "content": "guest"},
        )

    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
        orders = connection.execute(text("SELECT id FROM orders")).scalars().all()
    assert names == TABLES | {VERSION_TABLE, "orders"}
    assert orders == [7]
    assert _differences(engine) == []
