"""{{ cookiecutter.__tool }} under real governance: a temporary SQLite file, the
installed plugin found through its entry point, and the real executor."""

from __future__ import annotations

from cairnloop_core import Actor
from cairnloop_core.testing import GovernedHarness

TOOL = "{{ cookiecutter.__tool }}"
INPUT = {"target": "record-1", "reason": "The customer asked for it."}
OPERATOR = Actor("olivia", "operator")
AGENT = Actor("helper-bot", "agent")


def test_tool_is_installed_with_its_risk_tier(
    cairnloop_harness: GovernedHarness,
) -> None:
    tool = cairnloop_harness.app.registry.get_tool(TOOL)

    assert tool is not None, "run 'pip install -e .' before the tests"
    assert tool.spec.risk_tier == "{{ cookiecutter.risk_tier }}"
{%- if cookiecutter.risk_tier == "read_only" %}
    assert tool.spec.approval_mode == "auto"


def test_a_call_runs_at_once_without_approval(
    cairnloop_harness: GovernedHarness,
) -> None:
    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, approver=None)

    assert proposal.status == "succeeded"
    assert proposal.result["target"] == "record-1"
    assert proposal.decided_by == "cairnloop"
    assert cairnloop_harness.trail(proposal.id) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]
{%- elif cookiecutter.risk_tier == "low_write" %}
    assert tool.spec.approval_mode == "requires_approval"


def test_an_agents_call_waits_for_approval_then_runs_once(
    cairnloop_harness: GovernedHarness,
) -> None:
    waiting = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=AGENT, approver=None)
    assert waiting.status == "pending"

    cairnloop_harness.approve(waiting.id, approver=OPERATOR)
    outcomes = cairnloop_harness.execute()
    again = cairnloop_harness.execute()

    done = cairnloop_harness.app.get(waiting.id)
    assert [outcome.status for outcome in outcomes] == ["succeeded"]
    assert again == []
    assert done.result["target"] == "record-1"
    assert cairnloop_harness.trail(waiting.id) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]
{%- elif cookiecutter.risk_tier == "high_write" %}
    assert tool.spec.approval_mode == "requires_approval"


def test_an_operators_call_runs_once_another_operator_approves(
    cairnloop_harness: GovernedHarness,
) -> None:
    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=OPERATOR)

    assert proposal.status == "succeeded"
    assert proposal.decided_by == "test-approver"
    assert cairnloop_harness.trail(proposal.id) == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]


def test_an_agent_may_not_propose_it(cairnloop_harness: GovernedHarness) -> None:
    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=AGENT)

    assert proposal.status == "policy_denied"
    assert proposal.reason == (
        f"{TOOL} may be proposed by operators only, not agent:helper-bot."
    )
    assert cairnloop_harness.trail(proposal.id) == ["proposed"]
{%- else %}
    assert tool.spec.approval_mode == "always_block"


def test_every_call_is_blocked_and_never_runs(
    cairnloop_harness: GovernedHarness,
) -> None:
    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=OPERATOR)

    assert proposal.status == "blocked"
    assert proposal.result is None
    assert cairnloop_harness.execute() == []
    assert cairnloop_harness.trail(proposal.id) == ["proposed"]


def test_an_agent_is_refused_before_the_block(
    cairnloop_harness: GovernedHarness,
) -> None:
    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=AGENT)

    assert proposal.status == "policy_denied"
    assert proposal.reason == (
        f"{TOOL} may be proposed by operators only, not agent:helper-bot."
    )
{%- endif %}


def test_invalid_input_is_refused_with_each_field_named(
    cairnloop_harness: GovernedHarness,
) -> None:
    result = cairnloop_harness.propose(TOOL, {"target": ""}, actor=OPERATOR)

    assert result.outcome == "needs_input"
    assert sorted(error["field"] for error in result.errors) == ["reason", "target"]
    assert cairnloop_harness.trail(result.proposal.id) == ["proposed"]


def test_the_system_actor_is_not_authorized(
    cairnloop_harness: GovernedHarness,
) -> None:
    system = Actor("nightly-job", "system")

    proposal = cairnloop_harness.propose_and_run(TOOL, INPUT, actor=system)

    assert proposal.status == "policy_denied"
    assert proposal.reason.endswith("only, not system:nightly-job.")
