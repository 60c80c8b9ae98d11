"""``cairnloop demo``, the README's main job, as a real process."""

from __future__ import annotations

from pathlib import Path

from executor_support import cli_env, run_cli

EXPECTED_LINES = [
    "== Installed plugins",
    "  internal_note: ok (cairnloop-internal-note)",
    "  valid note      -> created, proposal 1",
    "  empty note      -> needs_input (content: String should have at least 1 "
    "character)",
    "  same note again -> duplicate of proposal 1",
    "== Inbox",
    "  proposal 1 is approved",
    "  proposal 1 -> succeeded",
    '  result: {"message_id": 1, "conversation_id": "conv-1001"}',
    "  [internal_note] Customer was charged twice; refund approved by billing.",
    "  proposal 1 (internal_note) - succeeded",
    "    1. proposed          - -> pending     by agent:support-bot",
    "    2. approved    pending -> approved    by operator:alice: Matches the ticket.",
    "    3. succeeded  approved -> succeeded   by system:cairnloop",
    "  proposal 2 (internal_note) - needs_input",
    "Audit chain intact: 4 events verified.",
]


def test_demo_prints_the_whole_trail_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    env = cli_env("sqlite:///unused.db")
    del env["CAIRNLOOP_DATABASE_URL"]

    first = run_cli("demo", env=env, cwd=tmp_path)
    again = run_cli("demo", env=env, cwd=tmp_path)

    assert (first.returncode, first.stderr) == (0, "")
    lines = first.stdout.splitlines()
    assert lines[0] == (
        f"Database: {tmp_path / 'cairnloop-demo.db'} "
        "(fresh SQLite file, schema created)"
    )
    positions = [lines.index(line) for line in EXPECTED_LINES]
    assert positions == sorted(positions)
    assert again.stdout == first.stdout


def test_demo_in_a_missing_folder_says_so_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "demo.db"

    done = run_cli(
        "demo", "--database-file", str(missing), env=cli_env("sqlite:///unused.db")
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"Error: the folder {str(missing.parent)!r} for the SQLite database does "
        "not exist; create it or choose another path.\n"
    )
    assert not missing.parent.exists()
