"""What a ``tools/call`` does: propose through governance, run an ``auto`` tool
at once, and answer in sentences an agent can act on."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp.types as types
from pydantic import ValidationError

from cairnloop_core.actors import Actor
from cairnloop_core.errors import IdempotencyConflict, ProposalNotFound
from cairnloop_core.inputs import field_errors
from cairnloop_core.mcp.listing import STATUS_TOOL, StatusInput
from cairnloop_core.proposals import Outcome, Proposal, ProposalStatus
from cairnloop_core.schema import utcnow

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop

__all__ = ["Caller", "ToolCalls", "UnknownTool"]

logger = logging.getLogger(__name__)

S = ProposalStatus
AUTO_RUN_SECONDS = 30.0
IDLE_POLL_SECONDS = 0.1
REFUSED_STATUSES = (S.SCOPE_INVALID, S.POLICY_DENIED, S.BLOCKED)


@dataclass(frozen=True)
class Caller:
    """Who is calling through MCP: the actor, its scopes and where it came from."""

    actor: Actor
    scopes: tuple[str, ...] = ()
    transport: str = "stdio"
    token: str | None = None

    def context(self) -> dict[str, Any]:
        """The host context recorded with each proposal this caller makes."""
        context: dict[str, Any] = {"via": "mcp", "transport": self.transport}
        if self.token is not None:
            context["token"] = self.token
        return context


class UnknownTool(Exception):
    """The client named a tool this server does not offer."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Unknown tool {name!r}; call tools/list to see the tools this server "
            "offers."
        )


class ToolCalls:
    """Answers ``tools/call`` for one Cairnloop facade; blocking, thread-safe."""

    def __init__(
        self, app: Cairnloop, *, auto_run_seconds: float = AUTO_RUN_SECONDS
    ) -> None:
        self.app = app
        self.auto_run_seconds = auto_run_seconds

    def call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        idempotency_key: str | None = None,
    ) -> types.CallToolResult:
        """Propose ``name`` with ``arguments``; run it at once if it is ``auto``.

        Raises ``UnknownTool`` when no installed tool has that name.
        """
        if name == STATUS_TOOL:
            return self.status(caller, arguments)
        if self.app.registry.get_tool(name) is None:
            raise UnknownTool(name)

        try:
            proposed = self.app.propose(
                name,
                actor=caller.actor,
                input=arguments or {},
                scopes=caller.scopes,
                context=caller.context(),
                idempotency_key=idempotency_key,
            )
        except IdempotencyConflict:
            return _answer(
                f"The idempotency key {idempotency_key!r} was already used for a "
                "different call; use a new key for a new call. Nothing was "
                "proposed.",
                {"tool": name, "outcome": "idempotency_conflict"},
                is_error=True,
            )
        if proposed.outcome is Outcome.UNSUPPORTED or proposed.proposal is None:
            raise UnknownTool(name)

        proposal = proposed.proposal
        if proposed.outcome is Outcome.NEEDS_INPUT:
            return _answer(
                _invalid_arguments(name, proposed.errors),
                _summary(proposal, proposed.outcome.value),
                is_error=True,
            )
        if proposed.refused:
            return _answer(
                f"The call was refused and will not run ({proposal.status.value}): "
                f"{proposed.reason}",
                _summary(proposal, proposed.outcome.value),
                is_error=True,
            )

        if proposal.approval_mode == "auto":
            proposal = self._settle(proposal)
        sentence, failed = describe(proposal)
        if proposed.outcome is Outcome.DUPLICATE:
            sentence = (
                f"This call was already made as proposal {proposal.id}. {sentence}"
            )
        return _answer(
            sentence, _summary(proposal, proposed.outcome.value), is_error=failed
        )

    def status(
        self, caller: Caller, arguments: dict[str, Any] | None
    ) -> types.CallToolResult:
        """Report on one of the caller's own proposals."""
        try:
            wanted = StatusInput.model_validate(arguments or {})
        except ValidationError as exc:
            return _answer(
                _invalid_arguments(STATUS_TOOL, field_errors(exc)),
                {"tool": STATUS_TOOL, "errors": field_errors(exc)},
                is_error=True,
            )

        try:
            proposal = self.app.get(wanted.proposal_id)
        except ProposalNotFound:
            proposal = None
        if proposal is None or proposal.actor != caller.actor:
            return _answer(
                f"Proposal {wanted.proposal_id} does not exist or was proposed by "
                "someone else; you can follow only your own proposals.",
                {"proposal_id": wanted.proposal_id},
                is_error=True,
            )

        sentence, _ = describe(proposal)
        return _answer(sentence, _summary(proposal, None), is_error=False)

    def _settle(self, proposal: Proposal) -> Proposal:
        # Runs due work in this process until this proposal has an outcome;
        # other proposals due earlier may run first, as in any worker.
        deadline = time.monotonic() + self.auto_run_seconds
        while proposal.status in (S.APPROVED, S.RUNNING):
            if proposal.status is S.APPROVED and _later(proposal.due_at):
                break
            step = self.app.run_once()
            proposal = self.app.get(proposal.id)
            unsettled = proposal.status in (S.APPROVED, S.RUNNING)
            if unsettled and time.monotonic() >= deadline:
                logger.info(
                    "Proposal %s is still %s after %gs; the call answers with its "
                    "status",
                    proposal.id,
                    proposal.status.value,
                    self.auto_run_seconds,
                    extra={
                        "event": "mcp_auto_run_unsettled",
                        "proposal_id": proposal.id,
                    },
                )
                break
            if step is None:
                # Another worker holds it; wait for that worker's outcome.
                time.sleep(IDLE_POLL_SECONDS)
        return proposal


def describe(proposal: Proposal) -> tuple[str, bool]:
    """A sentence saying where the proposal stands and what happens next, and
    whether that is a failure of the call."""
    pid, status = proposal.id, proposal.status
    follow = f"Call {STATUS_TOOL} with proposal_id {pid} later to learn the outcome."
    if status is S.PENDING:
        return (
            f"Proposal {pid} is waiting for an operator's approval; nothing has "
            f"run yet. {follow}",
            False,
        )
    if status is S.DEFERRED:
        until = (
            f" until {_moment(proposal.defer_until)}" if proposal.defer_until else ""
        )
        return (
            f"Proposal {pid} was set aside by an operator{until}; nothing has run "
            f"yet. {follow}",
            False,
        )
    if status is S.APPROVED:
        if _later(proposal.due_at) and proposal.due_at is not None:
            last = ""
            if proposal.reason:
                last = f" The last attempt failed: {proposal.reason}"
            return (
                f"Proposal {pid} is approved; its next attempt is due at "
                f"{_moment(proposal.due_at)}.{last} {follow}",
                False,
            )
        return (
            f"Proposal {pid} is approved and queued; a Cairnloop worker will run "
            f"it. {follow}",
            False,
        )
    if status is S.RUNNING:
        return f"Proposal {pid} is running now. {follow}", False
    if status is S.SUCCEEDED:
        return f"Proposal {pid} succeeded.", False
    if status is S.FAILED:
        return f"Proposal {pid} failed: {proposal.reason}", True
    if status is S.INVALIDATED:
        return f"Proposal {pid} was stopped before it ran: {proposal.reason}", True
    if status is S.REJECTED:
        return f"Proposal {pid} was rejected by an operator: {proposal.reason}", True
    if status is S.EXPIRED:
        return (
            f"Proposal {pid} expired before an operator decided; propose it again "
            "if it is still wanted.",
            True,
        )
    if status is S.NEEDS_INPUT:
        return _invalid_arguments(proposal.tool, proposal.errors or []), True
    return (
        f"Proposal {pid} was refused and will not run ({status.value}): "
        f"{proposal.reason}",
        True,
    )


def _summary(proposal: Proposal, outcome: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "proposal_id": proposal.id,
        "tool": proposal.tool,
        "status": proposal.status.value,
        "reason": proposal.reason,
        "errors": proposal.errors or [],
        "result": proposal.result,
        "preview": proposal.preview,
        "attempts": proposal.attempts,
        "created_at": proposal.created_at.isoformat(),
        "updated_at": proposal.updated_at.isoformat(),
        "expires_at": proposal.expires_at.isoformat(),
    }
    if outcome is not None:
        data = {"outcome": outcome, **data}
    return data


def _invalid_arguments(tool: str, errors: list[dict[str, str]]) -> str:
    lines = [f"- {error['field']}: {error['reason']}" for error in errors]
    return "\n".join(
        [f"The arguments for {tool} are not valid; fix them and call again:", *lines]
    )


def _answer(
    message: str, data: dict[str, Any], *, is_error: bool
) -> types.CallToolResult:
    details = json.dumps(data, ensure_ascii=False, default=str)
    return types.CallToolResult(
        content=[
            types.TextContent(text=message),
            types.TextContent(text=details),
        ],
        structured_content=data,
        is_error=is_error,
    )


def _later(moment: dt.datetime | None) -> bool:
    return moment is not None and moment > utcnow()


def _moment(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
