"""The pytest plugin plugin authors test with: its fixtures and the harness
take real calls through governance and the executor on a temporary SQLite file."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import BaseModel, Field

from cairnloop_core import (
    Actor,
    Allow,
    Cairnloop,
    DecisionRefused,
    InvalidArgument,
    PermanentToolError,
    PluginLoadError,
    RetryableToolError,
    RunContext,
    ToolSpec,
    hookimpl,
)
from cairnloop_core import testing as testing_module
from cairnloop_core.testing import TEST_APPROVER, TEST_OPERATOR, GovernedHarness


class GreetInput(BaseModel):
    name: str = Field(min_length=1, max_length=40)


def greet_tool(
    tier: str, calls: list[str], *, fail_with: Exception | None = None
) -> type:
    """An in-code tool that records each run in ``calls``."""

    class Greet:
        spec = ToolSpec(
            name="greet",
            title="Greet",
            description="Say hello to someone.",
            risk_tier=tier,
            input_model=GreetInput,
        )

        @hookimpl
        def cairnloop_authorize(
            tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
        ) -> Allow:
            return Allow()

        @hookimpl
        def cairnloop_run(
            tool: ToolSpec, input: GreetInput, actor: Actor, context: RunContext
        ) -> dict[str, Any]:
            calls.append(input.name)
            if fail_with is not None:
                raise fail_with
            return {"greeting": f"Hello, {input.name}!"}

    return Greet


def test_fixtures_come_from_the_pytest11_entry_point(
    request: pytest.FixtureRequest,
) -> None:
    points = entry_points(group="pytest11")

    assert [p.value for p in points if p.name == "cairnloop"] == [
        "cairnloop_core.testing"
    ]
    assert request.config.pluginmanager.get_plugin("cairnloop") is testing_module


def test_cairnloop_app_is_a_fresh_upgraded_sqlite_file_with_installed_tools(
    cairnloop_app: Cairnloop, tmp_path: Any
) -> None:
    assert cairnloop_app.engine.url.database == str(tmp_path / "cairnloop-test.db")
    assert cairnloop_app.count_by_status() == {}
    assert cairnloop_app.registry.get_tool("internal_note") is not None


def test_approval_tool_is_proposed_approved_and_run_once(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    assert cairnloop_harness.register_tool(greet_tool("low_write", calls)) == "greet"

    proposal = cairnloop_harness.propose_and_run("greet", {"name": "Ada"})

    assert proposal.status == "succeeded"
    assert proposal.result == {"greeting": "Hello, Ada!"}
    assert proposal.decided_by == TEST_APPROVER.id
    assert calls == ["Ada"]
    assert cairnloop_harness.trail(proposal.id) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]


def test_auto_tool_runs_without_an_approver(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    cairnloop_harness.register_tool(greet_tool("read_only", calls))

    proposal = cairnloop_harness.propose_and_run(
        "greet", {"name": "Ada"}, approver=None
    )

    assert proposal.status == "succeeded"
    assert proposal.decided_by == "cairnloop"
    assert calls == ["Ada"]


def test_without_an_approver_a_pending_proposal_stays_pending_and_unrun(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    cairnloop_harness.register_tool(greet_tool("high_write", calls))

    proposal = cairnloop_harness.propose_and_run(
        "greet", {"name": "Ada"}, approver=None
    )

    assert proposal.status == "pending"
    assert calls == []
    assert cairnloop_harness.trail(proposal.id) == ["proposed"]

    cairnloop_harness.approve(proposal.id, approver=TEST_OPERATOR)
    outcomes = cairnloop_harness.execute()

    assert [(o.proposal_id, o.status) for o in outcomes] == [(proposal.id, "succeeded")]
    assert calls == ["Ada"]


def test_blocked_and_invalid_calls_come_back_refused_without_running(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    cairnloop_harness.register_tool(greet_tool("destructive", calls))

    blocked = cairnloop_harness.propose_and_run("greet", {"name": "Ada"})
    invalid = cairnloop_harness.propose_and_run("greet", {"name": ""})

    assert blocked.status == "blocked"
    assert blocked.reason == (
        "Tool 'greet' is destructive and always blocked; nobody can approve it."
    )
    assert invalid.status == "needs_input"
    assert [e["field"] for e in invalid.errors or []] == ["name"]
    assert calls == []
    assert cairnloop_harness.trail(blocked.id) == ["proposed"]


def test_retryable_failure_comes_back_approved_with_the_next_attempt_due(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    failure = RetryableToolError("The greeting service is busy.", retry_after=3600)
    cairnloop_harness.register_tool(greet_tool("low_write", calls, fail_with=failure))

    proposal = cairnloop_harness.propose_and_run("greet", {"name": "Ada"})

    assert proposal.status == "approved"
    assert proposal.reason == "The greeting service is busy."
    assert calls == ["Ada"]
    assert cairnloop_harness.trail(proposal.id)[-1] == "attempt_failed"


def test_permanent_failure_ends_failed_with_the_tools_reason(
    cairnloop_harness: GovernedHarness,
) -> None:
    calls: list[str] = []
    failure = PermanentToolError("Ada has asked not to be greeted.")
    cairnloop_harness.register_tool(greet_tool("low_write", calls, fail_with=failure))

    proposal = cairnloop_harness.propose_and_run("greet", {"name": "Ada"})

    assert proposal.status == "failed"
    assert proposal.reason == "Ada has asked not to be greeted."
    assert cairnloop_harness.trail(proposal.id) == [
        "proposed",
        "approved",
        "started",
        "failed",
    ]


def test_unknown_tool_is_refused_with_what_to_do_and_nothing_stored(
    cairnloop_harness: GovernedHarness,
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        cairnloop_harness.propose_and_run("no_such_tool", {})

    assert str(refused.value) == (
        "tool: 'no_such_tool' is not installed in this environment; install its "
        "distribution (pip install -e .) or register it with register_tool()"
    )
    assert cairnloop_harness.app.count_by_status() == {}


def test_approving_ones_own_proposal_is_refused(
    cairnloop_harness: GovernedHarness,
) -> None:
    cairnloop_harness.register_tool(greet_tool("low_write", []))

    with pytest.raises(DecisionRefused) as refused:
        cairnloop_harness.propose_and_run(
            "greet", {"name": "Ada"}, actor=TEST_OPERATOR, approver=TEST_OPERATOR
        )

    assert "cannot also approve it; another operator must decide" in str(refused.value)
    assert cairnloop_harness.app.count_by_status() == {"pending": 1}


def test_registering_a_tool_without_run_is_refused_with_the_reason(
    cairnloop_harness: GovernedHarness,
) -> None:
    class Idle:
        spec = ToolSpec(
            name="idle",
            title="Idle",
            description="Does nothing.",
            risk_tier="read_only",
            input_model=GreetInput,
        )

    with pytest.raises(PluginLoadError) as refused:
        cairnloop_harness.register_tool(Idle)

    assert str(refused.value) == (
        "Plugin 'idle' was left out: it implements no cairnloop_run hook, so it "
        "could never run; add one marked with @hookimpl."
    )
    assert cairnloop_harness.app.registry.get_tool("idle") is None
