"""The command's answers to a bad database setting or unstorable names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from governance_support import run_cli

from cairnloop_core.cli.common import _hint


def test_an_empty_database_url_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    result = run_cli("", "inbox")

    assert result.code == 2
    assert result.stderr == (
        "Error: Invalid value for --database-url: is empty; give a URL such as "
        "sqlite:///cairnloop.db, or leave it out (see 'cairnloop --help')\n"
    )


def test_a_conversation_id_that_cannot_be_stored_is_refused(sqlite_url: str) -> None:
    assert run_cli(sqlite_url, "db", "upgrade").code == 0

    result = run_cli(sqlite_url, "conversation", "create", "c\udcff")

    assert result.code == 2
    assert result.stderr == (
        "Error: conversation_id: must not hold NUL characters or unpaired "
        "surrogates, which cannot be stored; remove them\n"
    )
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute("select count(*) from cairnloop_conversations")
        assert rows.fetchone() == (0,)


def test_an_overlong_conversation_title_is_refused(sqlite_url: str) -> None:
    assert run_cli(sqlite_url, "db", "upgrade").code == 0

    result = run_cli(sqlite_url, "conversation", "create", "c-1", "--title", "t" * 201)

    assert (result.code, result.stderr) == (
        2,
        "Error: title: must be at most 200 characters\n",
    )


def test_sqlite_permission_errors_carry_a_hint_on_what_to_check() -> None:
    assert _hint("attempt to write a readonly database").startswith(
        "; SQLite needs write access"
    )
    assert _hint("unable to open database file").startswith(
        "; check that the folder exists"
    )
    assert _hint("disk I/O error") == ""
