"""Pytest fixtures and a small harness that test tools under real governance.

Installed with cairnloop-core as the pytest plugin ``cairnloop``, so any test
suite in an environment with the core can ask for the fixtures by name:

``cairnloop_app``
    A ``Cairnloop`` on a fresh, upgraded SQLite file in the test's temporary
    folder, with every installed plugin discovered through its entry point.
``cairnloop_harness``
    A ``GovernedHarness`` on that app: propose, approve, execute and read the
    audit trail in one line each, and register tools defined in the test.

Nothing is mocked: proposals, decisions and runs go through the same
governance, executor and database code that production uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cairnloop_core.actors import Actor, ActorKind
from cairnloop_core.app import Cairnloop
from cairnloop_core.errors import InvalidArgument
from cairnloop_core.executor import RunOutcome
from cairnloop_core.proposals import Proposal, ProposalStatus, ProposeResult

__all__ = [
    "TEST_AGENT",
    "TEST_APPROVER",
    "TEST_OPERATOR",
    "GovernedHarness",
    "cairnloop_app",
    "cairnloop_harness",
]

TEST_AGENT = Actor("test-agent", ActorKind.AGENT)
TEST_OPERATOR = Actor("test-operator", ActorKind.OPERATOR)
TEST_APPROVER = Actor("test-approver", ActorKind.OPERATOR)


class GovernedHarness:
    """One governed environment driven the short way.

    ``actor`` arguments default to ``TEST_AGENT`` and ``approver`` to
    ``TEST_APPROVER``, an operator other than the proposer, because an actor
    may not approve their own proposal. ``app`` is the full facade for
    anything the harness does not cover.
    """

    def __init__(self, app: Cairnloop) -> None:
        self.app = app

    def register_tool(self, plugin: object) -> str:
        """Register a tool defined in the test (an object with a ``spec`` and
        ``@hookimpl`` functions, such as a class or a module) and return its
        name. Raises ``PluginLoadError`` with the reason if it is unusable.
        """
        return self.app.registry.register_tool(plugin)

    def propose(
        self,
        tool: str,
        input: Mapping[str, Any],
        *,
        actor: Actor | str = TEST_AGENT,
        scopes: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> ProposeResult:
        """Propose a call; the result tells the outcome, errors and reason."""
        return self.app.propose(
            tool, actor=actor, input=input, scopes=scopes, context=context
        )

    def approve(
        self, proposal_id: int, *, approver: Actor | str = TEST_APPROVER
    ) -> Proposal:
        """Approve a pending proposal as ``approver``."""
        return self.app.approve(proposal_id, actor=approver)

    def execute(self) -> list[RunOutcome]:
        """Run the executor until nothing is due; return what each step did."""
        return self.app.drain()

    def propose_and_run(
        self,
        tool: str,
        input: Mapping[str, Any],
        *,
        actor: Actor | str = TEST_AGENT,
        approver: Actor | str | None = TEST_APPROVER,
        scopes: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Proposal:
        """Take one call as far as governance lets it go and return the
        proposal as it ends up.

        A pending proposal is approved by ``approver`` (``approver=None``
        leaves it pending); then the executor runs whatever is due. A refused
        call (``needs_input``, ``policy_denied``, ``blocked``...) comes back
        in that status without running. A retryable failure comes back
        ``approved`` with its next attempt scheduled, because the executor
        does not wait for the retry. Raises ``InvalidArgument`` when the tool
        is not installed.
        """
        result = self.propose(tool, input, actor=actor, scopes=scopes, context=context)
        if result.proposal is None:
            raise InvalidArgument(
                "tool",
                f"{tool!r} is not installed in this environment; install its "
                "distribution (pip install -e .) or register it with "
                "register_tool()",
            )

        proposal = result.proposal
        if proposal.status is ProposalStatus.PENDING and approver is not None:
            self.approve(proposal.id, approver=approver)
        self.execute()
        return self.app.get(proposal.id)

    def trail(self, proposal_id: int) -> list[str]:
        """The types of the proposal's audit events, oldest first."""
        return [event.type for event in self.app.events(proposal_id)]


@pytest.fixture
def cairnloop_app(tmp_path: Path) -> Iterator[Cairnloop]:
    """A ``Cairnloop`` on a fresh, upgraded SQLite file with installed plugins."""
    with Cairnloop(f"sqlite:///{tmp_path / 'cairnloop-test.db'}") as app:
        app.upgrade()
        yield app


@pytest.fixture
def cairnloop_harness(cairnloop_app: Cairnloop) -> GovernedHarness:
    """A ``GovernedHarness`` on ``cairnloop_app``."""
    return GovernedHarness(cairnloop_app)
