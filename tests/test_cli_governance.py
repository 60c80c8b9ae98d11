"""The governance commands as scripts see them: a real ``cairnloop`` process,
its output, its exit code, and the database left as it was on bad input."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_support import (
    CliResult,
    governed_app,
    run_cli,
    run_cli_many,
    snapshot,
    write_tool_site,
)
from sqlalchemy import create_engine, inspect

from cairnloop_core import Actor, Cairnloop
from cairnloop_core.schema import utcnow

NOTE = {"conversation_id": "c-1", "content": "Customer asked for a callback."}
NOTE_JSON = json.dumps(NOTE)
PREVIEW = (
    "Adds a 5-word internal note to conversation 'c-1', visible to operators only."
)
AGENT = Actor("bot-7", "agent")
NOT_FOUND = (
    "Error: Proposal 999 does not exist; "
    "check the id with 'cairnloop inbox' or 'cairnloop show'.\n"
)


@pytest.fixture(scope="session")
def tool_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tool_site(tmp_path_factory.mktemp("tool-site"))


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Cairnloop]:
    """The CLI's own behaviour does not depend on the database, so most tests
    run on SQLite; the facade below it is tested on both, and the tests at the
    end run the CLI on PostgreSQL as well."""
    with governed_app(sqlite_url) as instance:
        yield instance


def cli(
    database_url: str, tool_site: Path, *args: str, stdin: str | None = None
) -> CliResult:
    return run_cli(database_url, *args, tool_site=tool_site, stdin=stdin)


def _pending(app: Cairnloop, content: str = NOTE["content"]) -> int:
    result = app.propose(
        "internal_note", actor=AGENT, input={**NOTE, "content": content}
    )
    return result.proposal.id


# -- propose -------------------------------------------------------------------


def test_propose_prints_the_new_proposal_and_its_preview(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", NOTE_JSON,
    )  # fmt: skip

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"Proposal 1: created, status pending\n  {PREVIEW}\n"
    proposal = app.get(1)
    assert (proposal.status, str(proposal.actor), proposal.input) == (
        "pending",
        "agent:bot-7",
        NOTE,
    )


def test_propose_json_is_one_document_with_the_contract_keys(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", NOTE_JSON, "--idempotency-key", "call-1", "--json",
    )  # fmt: skip

    assert (result.code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "proposal_id": 1,
        "outcome": "created",
        "status": "pending",
        "errors": [],
        "reason": None,
        "preview": PREVIEW,
    }
    assert app.get(1).idempotency_key == "call-1"


def test_propose_reads_the_input_from_a_file_or_stdin(
    app: Cairnloop, sqlite_url: str, tool_site: Path, tmp_path: Path
) -> None:
    source = tmp_path / "note.json"
    source.write_text(json.dumps({**NOTE, "content": "From a file."}))

    from_file = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input-file", str(source),
    )  # fmt: skip
    from_stdin = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input-file", "-", stdin=json.dumps({**NOTE, "content": "From stdin."}),
    )  # fmt: skip

    assert (from_file.code, from_stdin.code) == (0, 0)
    assert [app.get(1).input["content"], app.get(2).input["content"]] == [
        "From a file.",
        "From stdin.",
    ]


def test_propose_takes_scopes_context_kind_and_ttl(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = cli(
        sqlite_url, tool_site, "propose", "scoped_ticket", "--actor", "ops-1",
        "--actor-kind", "operator", "--scope", "tickets:write",
        "--scope", "tickets:assign", "--context", '{"channel": "email"}',
        "--ttl", "90m", "--input", '{"title": "Printer", "priority": 2}',
    )  # fmt: skip

    assert result.code == 0, result.stderr
    proposal = app.get(1)
    assert str(proposal.actor) == "operator:ops-1"
    assert proposal.scopes == ["tickets:assign", "tickets:write"]
    assert proposal.context == {"channel": "email"}
    assert (proposal.expires_at - proposal.created_at).total_seconds() == 90 * 60


@pytest.mark.parametrize(
    ("args", "code", "outcome", "line"),
    [
        (
            ["scoped_ticket", "--input", '{"title": "", "priority": 9}'],
            2,
            "needs_input",
            "Proposal 1: needs_input, status needs_input: title: String should "
            "have at least 1 character; priority: Input should be less than or "
            "equal to 5",
        ),
        (
            ["scoped_ticket", "--input", '{"title": "Printer", "priority": 2}'],
            1,
            "scope_invalid",
            "Proposal 1: scope_invalid, status scope_invalid: "
            "Missing scopes: tickets:assign, tickets:write",
        ),
        (
            ["closed_desk", "--input", '{"title": "Printer", "priority": 2}'],
            1,
            "policy_denied",
            "Proposal 1: policy_denied, status policy_denied: "
            "the help desk is closed outside office hours",
        ),
        (
            ["purge_thread", "--input", '{"order_id": "c-1"}'],
            1,
            "blocked",
            "Proposal 1: blocked, status blocked: Tool 'purge_thread' is "
            "destructive and always blocked; nobody can approve it.",
        ),
        (
            ["teleport", "--input", "{}"],
            2,
            "unsupported",
            "unsupported: Tool 'teleport' is not installed; "
            "run 'cairnloop tools' to see the tools you can use.",
        ),
    ],
    ids=["needs_input", "scope_invalid", "policy_denied", "blocked", "unsupported"],
)
def test_propose_refusal_exits_1_or_2_with_one_line_and_a_json_document(
    app: Cairnloop,
    sqlite_url: str,
    tool_site: Path,
    args: list[str],
    code: int,
    outcome: str,
    line: str,
) -> None:
    result = cli(sqlite_url, tool_site, "propose", *args, "--actor", "bot-7", "--json")

    assert (result.code, result.stderr) == (code, line + "\n")
    document = json.loads(result.stdout)
    assert document["outcome"] == outcome
    assert document["status"] == (None if outcome == "unsupported" else outcome)


def test_propose_refusal_without_json_prints_only_the_line(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", '{"conversation_id": "c-1"}',
    )  # fmt: skip

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "Proposal 1: needs_input, status needs_input: content: Field required\n"
    )


def test_propose_duplicate_exits_0_and_names_the_first_proposal(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    pid = _pending(app)

    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", NOTE_JSON,
    )  # fmt: skip

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == f"Proposal {pid}: duplicate, status pending\n  {PREVIEW}\n"


def test_propose_duplicate_of_a_refused_call_exits_as_the_refusal_did(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "c-1"},
        idempotency_key="call-9",
    )

    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", '{"conversation_id": "c-1"}', "--idempotency-key", "call-9",
    )  # fmt: skip

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "Proposal 1: duplicate, status needs_input: content: Field required\n"
    )


def test_propose_with_a_reused_key_and_other_input_is_refused_as_bad_input(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    app.propose("internal_note", actor=AGENT, input=NOTE, idempotency_key="call-1")
    before = snapshot(app.engine)

    result = cli(
        sqlite_url, tool_site, "propose", "internal_note", "--actor", "bot-7",
        "--input", '{"conversation_id": "c-1", "content": "Other."}',
        "--idempotency-key", "call-1",
    )  # fmt: skip

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: Idempotency key 'call-1' was already used by proposal 1 with a "
        "different tool, actor or input; use a new key for a new call.\n"
    )
    assert snapshot(app.engine) == before


# -- inbox and show ------------------------------------------------------------


def test_inbox_lists_pending_then_deferred_with_previews(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    first = _pending(app)
    second = _pending(app, "Second one.")
    app.defer(first, actor="alice", reason="Waiting for billing.")
    app.propose("purge_thread", actor=AGENT, input={"order_id": "c-1"})
    expires = {pid: app.get(pid).expires_at for pid in (first, second)}

    human = cli(sqlite_url, tool_site, "inbox")
    as_json = cli(sqlite_url, tool_site, "inbox", "--json")

    assert (human.code, human.stderr) == (0, "")
    assert human.stdout == (
        f"#{second:<6} pending   internal_note        by agent:bot-7  "
        f"expires {expires[second]:%Y-%m-%d %H:%M}Z\n"
        "         Adds a 2-word internal note to conversation 'c-1', "
        "visible to operators only.\n"
        f"#{first:<6} deferred  internal_note        by agent:bot-7  "
        f"expires {expires[first]:%Y-%m-%d %H:%M}Z\n"
        f"         {PREVIEW}\n"
    )
    listed = json.loads(as_json.stdout)
    assert [(p["id"], p["status"]) for p in listed] == [
        (second, "pending"),
        (first, "deferred"),
    ]
    assert "input" not in listed[0]


def test_inbox_says_so_when_nothing_waits(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = cli(sqlite_url, tool_site, "inbox")

    assert (result.code, result.stdout, result.stderr) == (
        0,
        "Nothing is waiting for a decision.\n",
        "",
    )


def test_show_prints_the_proposal_and_its_events(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    pid = _pending(app)
    app.approve(pid, actor="alice", note="Fine by me.")
    trail = app.events(pid)

    human = cli(sqlite_url, tool_site, "show", str(pid))
    as_json = cli(sqlite_url, tool_site, "show", str(pid), "--json")

    assert (human.code, human.stderr) == (0, "")
    assert human.stdout == (
        f"Proposal {pid}: internal_note (low_write, requires_approval) by "
        "agent:bot-7 - approved\n"
        f"  {PREVIEW}\n"
        f"   1. {trail[0].at:%H:%M:%S} proposed        - -> pending"
        "             agent:bot-7\n"
        f"   2. {trail[1].at:%H:%M:%S} approved        pending -> approved"
        "      operator:alice  (Fine by me.)\n"
    )
    document = json.loads(as_json.stdout)
    assert document["status"] == "approved"
    assert document["input"] == NOTE
    assert [
        (e["type"], e["actor"], e["from_status"], e["to_status"], e["reason"])
        for e in document["events"]
    ] == [
        ("proposed", {"id": "bot-7", "kind": "agent"}, None, "pending", None),
        (
            "approved",
            {"id": "alice", "kind": "operator"},
            "pending",
            "approved",
            "Fine by me.",
        ),
    ]
    assert [e["at"] for e in document["events"]] == [e.at.isoformat() for e in trail]


# -- decisions -----------------------------------------------------------------


def test_decision_commands_move_proposals_and_say_where_they_stand(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    approved, rejected, deferred = (_pending(app, f"Note {n}.") for n in range(3))
    started = utcnow()

    results = [
        cli(sqlite_url, tool_site, *args)
        for args in (
            ["approve", str(approved), "--actor", "alice", "--note", "Looks right."],
            ["reject", str(rejected), "--actor", "alice", "--reason", "Not needed."],
            ["defer", str(deferred), "--actor", "bob", "--reason", "Ask billing.",
             "--until", "2h"],
            ["reopen", str(deferred), "--actor", "bob"],
        )
    ]  # fmt: skip

    assert [(r.code, r.stdout, r.stderr) for r in results] == [
        (0, f"Proposal {approved} approved; status approved.\n", ""),
        (0, f"Proposal {rejected} rejected; status rejected.\n", ""),
        (0, f"Proposal {deferred} deferred; status deferred.\n", ""),
        (0, f"Proposal {deferred} reopened; status pending.\n", ""),
    ]
    assert [app.get(p).status for p in (approved, rejected, deferred)] == [
        "approved",
        "rejected",
        "pending",
    ]
    defer_event = app.events(deferred)[1]
    assert (defer_event.type, defer_event.reason) == ("deferred", "Ask billing.")
    until = dt.datetime.fromisoformat(defer_event.data["until"])  # type: ignore[index]
    two_hours = dt.timedelta(hours=2)
    assert started + two_hours <= until <= defer_event.at + two_hours


def test_decision_json_is_the_proposal_without_its_input(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    pid = _pending(app)

    result = cli(
        sqlite_url, tool_site, "approve", str(pid), "--actor", "alice", "--json"
    )

    document = json.loads(result.stdout)
    assert (result.code, document["id"], document["status"]) == (0, pid, "approved")
    assert document["decided_by"] == "alice"
    assert "input" not in document


def test_second_decision_exits_1_with_the_refusal_and_changes_nothing(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    pid = _pending(app)
    app.approve(pid, actor="alice")
    before = snapshot(app.engine)

    results = run_cli_many(
        sqlite_url,
        [
            ["approve", str(pid), "--actor", "bob"],
            ["reject", str(pid), "--actor", "bob", "--reason", "Too late."],
            ["defer", str(pid), "--actor", "bob", "--reason", "Later."],
            ["reopen", str(pid), "--actor", "bob"],
        ],
        tool_site=tool_site,
    )

    assert [(r.code, r.stdout, r.stderr) for r in results] == [
        (
            1,
            "",
            f"Refused: Proposal {pid} is no longer pending (it is approved); "
            "it cannot be approved and nothing was changed.\n",
        ),
        (
            1,
            "",
            f"Refused: Proposal {pid} is no longer pending or deferred (it is "
            "approved); it cannot be rejected and nothing was changed.\n",
        ),
        (
            1,
            "",
            f"Refused: Proposal {pid} is no longer pending (it is approved); "
            "it cannot be deferred and nothing was changed.\n",
        ),
        (
            1,
            "",
            f"Refused: Proposal {pid} is no longer deferred (it is approved); "
            "it cannot be reopened and nothing was changed.\n",
        ),
    ]
    assert snapshot(app.engine) == before


def test_approving_your_own_proposal_exits_1(
    app: Cairnloop, sqlite_url: str, tool_site: Path
) -> None:
    result = app.propose("internal_note", actor=Actor("alice"), input=NOTE)
    pid = result.proposal.id
    before = snapshot(app.engine)

    refused = cli(sqlite_url, tool_site, "approve", str(pid), "--actor", "alice")

    assert (refused.code, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"Refused: Proposal {pid} was proposed by 'alice', who cannot also approve "
        "it; another operator must decide.\n"
    )
    assert snapshot(app.engine) == before


# -- bad input -------------------------------------------------------------------

HELP = " (see 'cairnloop {command} --help')"
PROPOSE = ["propose", "internal_note", "--actor", "bot-7"]

# These are refused before the database is opened, so SQLite stands for both.
PARSE_ERRORS = [
    (
        [*PROPOSE, "--input", '{"conversation_id": '],
        "Error: Invalid value for --input: is not valid JSON (Expecting value at "
        "line 1, column 21)" + HELP.format(command="propose"),
    ),
    (
        [*PROPOSE, "--input", "[1, 2]"],
        "Error: Invalid value for --input: must be a JSON object"
        + HELP.format(command="propose"),
    ),
    (
        [*PROPOSE, "--input", '{"content": NaN}'],
        "Error: input: must hold only JSON values (no NaN, infinity or other objects)",
    ),
    (
        [*PROPOSE, "--input", "[" * 100_000],
        "Error: Invalid value for --input: is not usable JSON (RecursionError)"
        + HELP.format(command="propose"),
    ),
    (
        PROPOSE,
        "Error: give the tool's input with exactly one of --input or --input-file"
        + HELP.format(command="propose"),
    ),
    (
        [*PROPOSE, "--input-file", "/no/such/note.json"],
        "Error: Invalid value for --input-file: cannot be read (No such file or "
        "directory)" + HELP.format(command="propose"),
    ),
    (
        ["propose", "internal_note", "--input", NOTE_JSON],
        "Error: Missing option '--actor'." + HELP.format(command="propose"),
    ),
    (
        ["propose", "internal_note", "--actor", " ", "--input", NOTE_JSON],
        "Error: actor: must be a non-blank id",
    ),
    (
        ["propose", "internal_note", "--actor", "a" * 201, "--input", NOTE_JSON],
        "Error: actor: must be at most 200 characters",
    ),
    (
        [*PROPOSE, "--input", NOTE_JSON, "--ttl", "soon"],
        "Error: Invalid value for --ttl: give a positive duration such as 90s, "
        "30m, 48h or 7d" + HELP.format(command="propose"),
    ),
    (
        [*PROPOSE, "--input", NOTE_JSON, "--ttl", "3651d"],
        "Error: Invalid value for --ttl: must be at most 3650 days"
        + HELP.format(command="propose"),
    ),
    (
        [*PROPOSE, "--input", NOTE_JSON, "--idempotency-key", "k" * 201],
        "Error: idempotency_key: must be at most 200 characters (it has 201)",
    ),
    (
        ["inbox", "--limit", "many"],
        "Error: Invalid value for '--limit': 'many' is not a whole number from 1 "
        "to 1000" + HELP.format(command="inbox"),
    ),
    (
        ["approve", "abc", "--actor", "alice"],
        "Error: Invalid value for 'PROPOSAL_ID': 'abc' is not a proposal id; give "
        "the number 'cairnloop inbox' shows" + HELP.format(command="approve"),
    ),
    (
        ["approve", "0", "--actor", "alice"],
        "Error: Invalid value for 'PROPOSAL_ID': 0 is not a proposal id; ids "
        "start at 1" + HELP.format(command="approve"),
    ),
    (
        ["approve", "1", "--actor", "alice", "--note", "n" * 2001],
        "Error: note: must be at most 2000 characters (it has 2001)",
    ),
    (
        ["reject", "1", "--actor", "alice"],
        "Error: Missing option '--reason'." + HELP.format(command="reject"),
    ),
    (
        ["reject", "1", "--actor", "alice", "--reason", " \t "],
        "Error: reason: must be non-blank text",
    ),
    (
        ["defer", "1", "--actor", "alice", "--reason", "later", "--until", "soon"],
        "Error: Invalid value for --until: give an ISO 8601 time such as "
        "2026-12-24T09:00Z or a duration such as 30m, 2h or 1d"
        + HELP.format(command="defer"),
    ),
    (
        [
            "defer",
            "1",
            "--actor",
            "alice",
            "--reason",
            "later",
            "--until",
            "2000-01-01T00:00Z",
        ],
        "Error: until: must be in the future",
    ),
    (
        [
            "defer",
            "1",
            "--actor",
            "alice",
            "--reason",
            "later",
            "--until",
            "99999999999d",
        ],
        "Error: Invalid value for --until: is too far in the future"
        + HELP.format(command="defer"),
    ),
    (
        ["reopen", "1.5", "--actor", "alice"],
        "Error: Invalid value for 'PROPOSAL_ID': '1.5' is not a proposal id; give "
        "the number 'cairnloop inbox' shows" + HELP.format(command="reopen"),
    ),
    (
        ["show", "first"],
        "Error: Invalid value for 'PROPOSAL_ID': 'first' is not a proposal id; "
        "give the number 'cairnloop inbox' shows" + HELP.format(command="show"),
    ),
    (
        ["audit", "verify", "now"],
        "Error: Got unexpected extra argument (now)"
        + HELP.format(command="audit verify"),
    ),
]


def test_bad_input_to_every_command_is_one_line_exit_2_and_changes_nothing(
    sqlite_url: str, tool_site: Path
) -> None:
    with governed_app(sqlite_url) as app:
        app.propose("internal_note", actor=AGENT, input=NOTE)
        before = snapshot(app.engine)

        results = run_cli_many(
            sqlite_url, [args for args, _ in PARSE_ERRORS], tool_site=tool_site
        )

        after = snapshot(app.engine)
    seen = [(r.code, r.stdout, r.stderr) for r in results]
    expected = [(2, "", message + "\n") for _, message in PARSE_ERRORS]
    for (args, _), got, wanted in zip(PARSE_ERRORS, seen, expected, strict=True):
        assert got == wanted, args
    assert after == before


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "999", "--actor", "alice"],
        ["defer", "999", "--actor", "alice", "--reason", "later"],
        ["reopen", "999", "--actor", "alice"],
        ["show", "999"],
        ["show", "99999999999999999999999"],
    ],
    ids=["approve", "defer", "reopen", "show", "show-huge"],
)
def test_unknown_proposal_id_exits_2_naming_it(
    app: Cairnloop, sqlite_url: str, tool_site: Path, args: list[str]
) -> None:
    _pending(app)
    before = snapshot(app.engine)

    result = cli(sqlite_url, tool_site, *args)

    expected = NOT_FOUND.replace("999", args[1])
    assert (result.code, result.stdout, result.stderr) == (2, "", expected)
    assert snapshot(app.engine) == before


def test_every_command_on_a_database_without_schema_says_to_upgrade(
    sqlite_url: str, tool_site: Path
) -> None:
    commands = [
        [*PROPOSE, "--input", NOTE_JSON],
        ["inbox"],
        ["approve", "1", "--actor", "alice"],
        ["reject", "1", "--actor", "alice", "--reason", "no"],
        ["defer", "1", "--actor", "alice", "--reason", "later"],
        ["reopen", "1", "--actor", "alice"],
        ["show", "1"],
        ["audit", "verify"],
    ]

    results = run_cli_many(sqlite_url, commands, tool_site=tool_site)

    message = (
        "Error: the database has no Cairnloop tables yet; "
        "run 'cairnloop db upgrade' first.\n"
    )
    assert [(r.code, r.stdout, r.stderr) for r in results] == [(2, "", message)] * 8
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
    finally:
        engine.dispose()


def test_unreachable_database_is_one_line_exit_2(tool_site: Path) -> None:
    result = run_cli(
        "postgresql+psycopg://127.0.0.1:1/none", "inbox", tool_site=tool_site
    )

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: the database could not be used: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_sqlite_is_one_line_exit_2_and_left_alone(
    tmp_path: Path, tool_site: Path
) -> None:
    corrupt = tmp_path / "cairnloop.db"
    corrupt.write_bytes(b"not a database, just bytes\n" * 200)
    url = f"sqlite:///{corrupt}"

    results = run_cli_many(
        url, [["inbox"], ["db", "upgrade"], ["audit", "verify"]], tool_site=tool_site
    )

    message = (
        "Error: the database could not be used: file is not a database; check "
        "that the database URL names an SQLite file Cairnloop created.\n"
    )
    assert [(r.code, r.stdout, r.stderr) for r in results] == [(2, "", message)] * 3
    assert corrupt.read_bytes() == b"not a database, just bytes\n" * 200


UNSTORABLE = (
    "must not hold NUL characters or unpaired surrogates, which cannot be "
    "stored; remove them"
)


def test_text_no_database_can_store_is_one_line_exit_2_and_changes_nothing(
    database_url: str, tool_site: Path
) -> None:
    # A JSON escape can spell a NUL (PostgreSQL refuses it in text and jsonb)
    # or a lone surrogate; bytes that are not UTF-8 in an argument reach
    # Python as surrogates too. Neither can be stored or hashed.
    nul = json.dumps({**NOTE, "content": "before\x00after"})
    surrogate = '{"conversation_id": "c-1", "content": "\\ud800"}'
    cases = [
        ([*PROPOSE, "--input", nul], f"Error: input: {UNSTORABLE}"),
        ([*PROPOSE, "--input", surrogate], f"Error: input: {UNSTORABLE}"),
        (
            [*PROPOSE, "--input", NOTE_JSON, "--context", '{"k": "\\u0000"}'],
            f"Error: context: {UNSTORABLE}",
        ),
        (
            ["propose", "internal_note", "--actor", "bot\udcff", "--input", NOTE_JSON],
            f"Error: actor: {UNSTORABLE}",
        ),
        (
            [*PROPOSE, "--input", NOTE_JSON, "--idempotency-key", "k\udcff"],
            f"Error: idempotency_key: {UNSTORABLE}",
        ),
        (
            ["reject", "1", "--actor", "alice", "--reason", "no\udcff"],
            f"Error: reason: {UNSTORABLE}",
        ),
    ]
    with governed_app(database_url) as app:
        app.propose("internal_note", actor=AGENT, input=NOTE)
        before = snapshot(app.engine)

        results = [cli(database_url, tool_site, *args) for args, _ in cases]

        after = snapshot(app.engine)
    for (args, message), result in zip(cases, results, strict=True):
        assert (result.code, result.stdout, result.stderr) == (
            2,
            "",
            message + "\n",
        ), args
    assert after == before


# -- the same commands on PostgreSQL --------------------------------------------


def test_cli_on_postgresql_proposes_decides_shows_and_verifies(
    postgres_url: str, tool_site: Path
) -> None:
    with governed_app(postgres_url) as app:
        steps = [
            [*PROPOSE, "--input", NOTE_JSON],
            [*PROPOSE, "--input", "{}", "--json"],
            ["approve", "1", "--actor", "alice", "--note", "Fine."],
            ["approve", "1", "--actor", "bob"],
            ["approve", "999", "--actor", "bob"],
            ["audit", "verify"],
        ]
        results = [cli(postgres_url, tool_site, *step) for step in steps]
        shown = json.loads(cli(postgres_url, tool_site, "show", "1", "--json").stdout)

        assert [(r.code, r.stderr) for r in results] == [
            (0, ""),
            (
                2,
                "Proposal 2: needs_input, status needs_input: conversation_id: "
                "Field required; content: Field required\n",
            ),
            (0, ""),
            (
                1,
                "Refused: Proposal 1 is no longer pending (it is approved); "
                "it cannot be approved and nothing was changed.\n",
            ),
            (2, NOT_FOUND),
            (0, ""),
        ]
        assert (
            results[0].stdout == f"Proposal 1: created, status pending\n  {PREVIEW}\n"
        )
        assert results[5].stdout == "Audit trail intact: 3 event(s) verified.\n"
        assert [(e["type"], e["reason"]) for e in shown["events"]] == [
            ("proposed", None),
            ("approved", "Fine."),
        ]
        assert app.get(1).status == "approved"


def test_cli_on_postgresql_without_schema_says_to_upgrade(
    postgres_url: str, tool_site: Path
) -> None:
    results = run_cli_many(
        postgres_url,
        [["inbox"], ["approve", "1", "--actor", "alice"]],
        tool_site=tool_site,
    )

    message = (
        "Error: the database has no Cairnloop tables yet; "
        "run 'cairnloop db upgrade' first.\n"
    )
    assert [(r.code, r.stdout, r.stderr) for r in results] == [(2, "", message)] * 2
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
    finally:
        engine.dispose()
