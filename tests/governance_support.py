"""Shared helpers of the governance tests: apps with the test tools, database
snapshots, the CLI in a subprocess and tampering behind Cairnloop's back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text

from cairnloop_core import Cairnloop, Registry, Settings
from cairnloop_core.schema import metadata

TESTS_DIR = Path(__file__).parent
CAIRNLOOP = str(Path(sys.executable).parent / "cairnloop")
DIST_NAME = "cairnloop-governed-tools-test"
CLI_DEADLINE_SECONDS = 120
SQLITE_TRIGGERS = ("cairnloop_events_no_update", "cairnloop_events_no_delete")


def governed_registry() -> Registry:
    """The installed plugins plus every test tool, registered in code."""
    from governed_tools import ALL_TOOLS

    registry = Registry.discover(allow=None, block=())
    for tool in ALL_TOOLS.values():
        registry.register_tool(tool, distribution=DIST_NAME)
    return registry


@contextmanager
def governed_app(
    database_url: str, settings: Settings | None = None
) -> Iterator[Cairnloop]:
    """A facade on a fresh, upgraded database with the test tools."""
    with Cairnloop(
        database_url, registry=governed_registry(), settings=settings
    ) as app:
        app.upgrade()
        yield app


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every Cairnloop table, in primary-key order."""
    tables = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns)
            rows = connection.execute(select(table).order_by(*order)).all()
            tables[table.name] = [tuple(row) for row in rows]
        connection.rollback()
    return tables


def write_tool_site(folder: Path) -> Path:
    """Publish the test tools as a real distribution that entry points find."""
    from governed_tools import ALL_TOOLS

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTS_DIR / "governed_tools.py", folder / "governed_tools.py")
    info = folder / "cairnloop_governed_tools_test-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: 0.1.0\n"
    )
    points = "".join(f"{name} = governed_tools:{name}\n" for name in ALL_TOOLS)
    (info / "entry_points.txt").write_text(f"[cairnloop.tools]\n{points}")
    return folder


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def cli_env(tool_site: Path | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CAIRNLOOP_")
    }
    env["PYTHONPATH"] = str(tool_site) if tool_site else ""
    env["COLUMNS"] = "200"
    return env


def run_cli(
    database_url: str,
    *args: str,
    tool_site: Path | None = None,
    stdin: str | None = None,
) -> CliResult:
    """Run ``cairnloop --database-url URL ARGS`` as a real subprocess."""
    completed = subprocess.run(
        [CAIRNLOOP, "--database-url", database_url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(tool_site),
        timeout=CLI_DEADLINE_SECONDS,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def run_cli_many(
    database_url: str,
    commands: Sequence[Sequence[str]],
    *,
    tool_site: Path | None = None,
) -> list[CliResult]:
    """Run independent commands two at a time; results in the given order."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(run_cli, database_url, *command, tool_site=tool_site)
            for command in commands
        ]
        return [future.result() for future in futures]


def tamper(database_url: str, *statements: str | tuple[str, dict[str, Any]]) -> None:
    """Change rows the way an attacker with database access would.

    The append-only triggers are switched off first: on PostgreSQL for this
    session only, on SQLite by dropping them.
    """
    engine = create_engine(database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for trigger in SQLITE_TRIGGERS:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, {})
            connection.execute(text(sql), params)
    engine.dispose()
