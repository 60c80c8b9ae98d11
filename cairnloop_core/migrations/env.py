"""Alembic environment for Cairnloop's own migrations, run on the host's engine."""

from __future__ import annotations

from alembic import context

from cairnloop_core.schema import metadata

VERSION_TABLE = "cairnloop_alembic_version"


def _include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table":
        return bool(name) and name.startswith("cairnloop_") and name != VERSION_TABLE
    return True


def run_migrations() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            include_object=_include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
