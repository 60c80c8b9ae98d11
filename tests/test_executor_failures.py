"""How the executor records failed attempts: retries with backoff, permanent
errors, exhausted attempts, exceptions, and runs that hang."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from executor_support import (
    Apps,
    InlineTool,
    approved,
    event_types,
    note_rows,
    registry_with,
    tool_spec,
    wait_for,
)
from sqlalchemy import insert

from cairnloop_core import (
    Cairnloop,
    InvalidArgument,
    PermanentToolError,
    RetryableToolError,
    RunContext,
    Settings,
)
from cairnloop_core.executor import retry_delay, run_key
from cairnloop_core.schema import conversations, messages, utcnow


@pytest.fixture(params=[True, False], ids=["transactional", "leased"])
def transactional(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def run_events(transactional: bool, *outcomes: str) -> list[str]:
    """The events a run leaves: leased runs add a ``started`` per attempt."""
    trail = ["proposed", "approved"]
    for outcome in outcomes:
        trail += [outcome] if transactional else ["started", outcome]
    return trail


def test_retryable_error_is_retried_with_the_same_key_then_succeeds(
    apps: Apps, transactional: bool
) -> None:
    def flaky(input: Any, context: RunContext) -> dict[str, int]:
        if context.attempt == 1:
            raise RetryableToolError("upstream busy", retry_after=0)
        return {"attempt": context.attempt}

    tool = InlineTool(tool_spec(transactional=transactional), flaky)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    first = app.run_once()
    second = app.run_once()

    assert first is not None and second is not None
    assert (first.status, first.event, first.reason) == (
        "approved",
        "attempt_failed",
        "upstream busy",
    )
    assert (second.status, second.event) == ("succeeded", "succeeded")
    proposal = app.get(proposal_id)
    assert (proposal.status.value, proposal.attempts) == ("succeeded", 2)
    assert proposal.result == {"attempt": 2}
    assert [(c.attempt, c.idempotency_key) for c in tool.calls] == [
        (1, run_key(proposal_id)),
        (2, run_key(proposal_id)),
    ]
    assert event_types(app, proposal_id) == run_events(
        transactional, "attempt_failed", "succeeded"
    )
    assert app.verify_audit()[1] == []


def test_failed_attempt_waits_for_its_backoff_before_the_next_run(
    apps: Apps,
) -> None:
    def busy(input: Any, context: RunContext) -> None:
        raise RetryableToolError("upstream busy")

    spec = tool_spec(retry_base_seconds=600, retry_max_seconds=900)
    tool = InlineTool(spec, busy)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    app.run_once()
    again = app.run_once()

    assert again is None
    assert len(tool.calls) == 1
    failed = app.events(proposal_id)[-1]
    assert failed.type == "attempt_failed"
    assert failed.data is not None
    assert 300 <= failed.data["retry_in_seconds"] <= 600
    proposal = app.get(proposal_id)
    assert proposal.status.value == "approved"
    assert proposal.due_at is not None and proposal.due_at > utcnow()
    assert app.executor.next_due() == proposal.due_at


def test_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() -> None:
    spec = tool_spec(retry_base_seconds=1, retry_max_seconds=8)

    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8)]:
        delays = [retry_delay(spec, attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
        assert len(set(delays)) > 1


def test_permanent_error_fails_at_once_with_its_reason(
    apps: Apps, transactional: bool
) -> None:
    def refuse(input: Any, context: RunContext) -> None:
        raise PermanentToolError("Ticket 42 is closed; the note cannot be added.")

    tool = InlineTool(tool_spec(transactional=transactional), refuse)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    outcomes = app.drain()

    assert [(o.status, o.event) for o in outcomes] == [("failed", "failed")]
    proposal = app.get(proposal_id)
    assert proposal.status.value == "failed"
    assert proposal.reason == "Ticket 42 is closed; the note cannot be added."
    assert proposal.attempts == 1
    assert len(tool.calls) == 1
    assert event_types(app, proposal_id) == run_events(transactional, "failed")


def test_attempts_exhausted_end_in_failed_naming_the_last_error(
    apps: Apps, transactional: bool
) -> None:
    def busy(input: Any, context: RunContext) -> None:
        raise RetryableToolError(
            f"upstream busy (try {context.attempt})", retry_after=0
        )

    tool = InlineTool(tool_spec(transactional=transactional, max_attempts=3), busy)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    outcomes = app.drain()

    assert [o.event for o in outcomes] == ["attempt_failed", "attempt_failed", "failed"]
    proposal = app.get(proposal_id)
    assert proposal.status.value == "failed"
    assert proposal.reason == ("All 3 attempts failed; the last: upstream busy (try 3)")
    assert proposal.attempts == 3
    assert [c.attempt for c in tool.calls] == [1, 2, 3]
    assert event_types(app, proposal_id) == run_events(
        transactional, "attempt_failed", "attempt_failed", "failed"
    )
    assert app.run_once() is None


def test_exception_from_run_counts_as_a_failed_attempt_and_is_logged_after_commit(
    apps: Apps, transactional: bool, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(input: Any, context: RunContext) -> None:
        raise KeyError("customer_id")

    tool = InlineTool(tool_spec(transactional=transactional, max_attempts=2), broken)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    with caplog.at_level(logging.INFO, logger="cairnloop_core"):
        first = app.run_once()
        second = app.run_once()

    assert first is not None and second is not None
    assert (first.event, first.reason) == (
        "attempt_failed",
        "The tool raised KeyError: 'customer_id'",
    )
    assert app.get(proposal_id).reason == (
        "All 2 attempts failed; the last: The tool raised KeyError: 'customer_id'"
    )
    raised = [r for r in caplog.records if getattr(r, "event", None) == "run_raised"]
    assert len(raised) == 2
    assert raised[0].exc_info is not None and raised[0].exc_info[0] is KeyError
    reported = [getattr(r, "event", None) for r in caplog.records]
    assert reported.index("run_raised") < reported.index("proposal_attempt_failed")
    assert "proposal_failed" in reported


def test_result_that_is_not_json_fails_permanently(apps: Apps) -> None:
    tool = InlineTool(tool_spec(), lambda input, context: {"at": object()})
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    app.drain()

    proposal = app.get(proposal_id)
    assert proposal.status.value == "failed"
    assert proposal.reason == "The tool returned a result that is not JSON."


def test_failed_transactional_attempt_leaves_none_of_its_writes(apps: Apps) -> None:
    def write_then_fail(input: Any, context: RunContext) -> dict[str, int]:
        assert context.session is not None
        context.session.execute(
            insert(messages).values(
                conversation_id="c-1",
                role="internal_note",
                content=f"attempt {context.attempt}",
                run_key=f"{context.idempotency_key}-{context.attempt}",
                created_at=utcnow(),
            )
        )
        if context.attempt == 1:
            raise RetryableToolError("flaky", retry_after=0)
        return {"written": context.attempt}

    tool = InlineTool(tool_spec(transactional=True), write_then_fail)
    app = apps.open(registry_with(tool))
    with app.engine.begin() as connection:
        connection.execute(insert(conversations).values(id="c-1", created_at=utcnow()))
    proposal_id = approved(app, "ping", {"text": "hi"})

    app.drain()

    assert app.get(proposal_id).status.value == "succeeded"
    assert [row["content"] for row in note_rows(app)] == ["attempt 2"]


def test_hanging_leased_run_times_out_and_retries_with_the_same_key(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def hang_first(input: Any, context: RunContext) -> dict[str, int]:
        if context.attempt == 1:
            release.wait(60)
        return {"attempt": context.attempt}

    tool = InlineTool(tool_spec(timeout_seconds=0.3, max_attempts=2), hang_first)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    try:
        with caplog.at_level(logging.INFO, logger="cairnloop_core"):
            first = app.run_once()
            second = wait_for(app.run_once, what="the retry to fall due")
    finally:
        release.set()

    assert first is not None
    assert (first.status, first.event, first.reason) == (
        "approved",
        "attempt_failed",
        "The tool did not finish within 0.3 seconds.",
    )
    assert (second.status, second.event) == ("succeeded", "succeeded")
    assert [(c.attempt, c.idempotency_key) for c in tool.calls] == [
        (1, run_key(proposal_id)),
        (2, run_key(proposal_id)),
    ]
    assert event_types(app, proposal_id) == run_events(
        False, "attempt_failed", "succeeded"
    )
    timed_out = [
        r for r in caplog.records if getattr(r, "event", "") == "run_timed_out"
    ]
    assert len(timed_out) == 1


def test_leased_run_writes_a_lease_while_it_runs(apps: Apps) -> None:
    seen: dict[str, Any] = {}
    app: Cairnloop

    def look(input: Any, context: RunContext) -> None:
        proposal = app.get(context.proposal_id)
        seen.update(status=proposal.status.value, attempts=proposal.attempts)

    tool = InlineTool(tool_spec(timeout_seconds=5), look)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    app.drain()

    assert seen == {"status": "running", "attempts": 1}
    started = app.events(proposal_id)[2]
    assert started.type == "started"
    assert started.data is not None
    assert started.data["worker"] == app.executor.worker_id
    assert started.data["lease_seconds"] == 5 + app.settings.lease_margin_seconds
    assert app.get(proposal_id).status.value == "succeeded"


def test_single_attempt_tool_that_raises_fails_naming_its_only_attempt(
    apps: Apps,
) -> None:
    def broken(input: Any, context: RunContext) -> None:
        raise TimeoutError("the CRM did not answer")

    tool = InlineTool(tool_spec(max_attempts=1), broken)
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    app.drain()

    proposal = app.get(proposal_id)
    assert (proposal.status.value, proposal.attempts) == ("failed", 1)
    assert proposal.reason == (
        "Its only attempt failed: The tool raised TimeoutError: the CRM did not answer"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("poll_seconds", 0, "poll_seconds: must be greater than zero"),
        ("lease_margin_seconds", -1, "lease_margin_seconds: must not be negative"),
        ("stop_grace_seconds", -0.5, "stop_grace_seconds: must not be negative"),
    ],
)
def test_executor_settings_refuse_values_that_cannot_work(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        Settings(**{field: value})

    assert str(refused.value) == message


def test_database_error_inside_a_transactional_run_is_a_readable_failed_attempt(
    apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    def clash(input: Any, context: RunContext) -> None:
        assert context.session is not None
        for _ in range(2):
            context.session.execute(
                insert(messages).values(
                    conversation_id="c-1",
                    role="internal_note",
                    content="twice",
                    run_key=context.idempotency_key,
                    created_at=utcnow(),
                )
            )

    tool = InlineTool(tool_spec(transactional=True, max_attempts=2), clash)
    app = apps.open(registry_with(tool))
    with app.engine.begin() as connection:
        connection.execute(insert(conversations).values(id="c-1", created_at=utcnow()))
    proposal_id = approved(app, "ping", {"text": "hi"})

    with caplog.at_level(logging.WARNING, logger="cairnloop_core"):
        first = app.run_once()

    kind = (
        "UniqueViolation"
        if app.engine.dialect.name == "postgresql"
        else ("IntegrityError")
    )
    assert first is not None
    assert (first.event, first.reason) == (
        "attempt_failed",
        f"The tool's database write failed: {kind}",
    )
    assert note_rows(app) == []
    assert event_types(app, proposal_id) == ["proposed", "approved", "attempt_failed"]
    raised = [r for r in caplog.records if getattr(r, "event", "") == "run_raised"]
    assert len(raised) == 1 and "INSERT INTO cairnloop_messages" in raised[0].exc_text
