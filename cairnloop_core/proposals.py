"""A proposal's statuses and the read models of proposals and their events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from cairnloop_core.actors import Actor
from cairnloop_core.errors import InvalidArgument, ProposalNotFound
from cairnloop_core.schema import iso

__all__ = [
    "LIVE_STATUSES",
    "REFUSED_STATUSES",
    "TERMINAL_STATUSES",
    "Event",
    "Outcome",
    "Proposal",
    "ProposalStatus",
    "ProposeResult",
    "check_proposal_id",
]

MAX_PROPOSAL_ID = 2**63 - 1


def check_proposal_id(proposal_id: Any) -> int:
    """Return ``proposal_id`` if it can name a proposal.

    Raises ``InvalidArgument`` for anything but a positive whole number and
    ``ProposalNotFound`` for one too large for any row to have.
    """
    if (
        isinstance(proposal_id, bool)
        or not isinstance(proposal_id, int)
        or proposal_id < 1
    ):
        raise InvalidArgument("proposal_id", "must be a positive whole number")
    if proposal_id > MAX_PROPOSAL_ID:
        raise ProposalNotFound(proposal_id)
    return proposal_id


class ProposalStatus(StrEnum):
    """Every state of a proposal's lifecycle, in one column."""

    NEEDS_INPUT = "needs_input"
    SCOPE_INVALID = "scope_invalid"
    POLICY_DENIED = "policy_denied"
    BLOCKED = "blocked"
    PENDING = "pending"
    DEFERRED = "deferred"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INVALIDATED = "invalidated"
    REJECTED = "rejected"
    EXPIRED = "expired"


LIVE_STATUSES = frozenset(
    {
        ProposalStatus.PENDING,
        ProposalStatus.DEFERRED,
        ProposalStatus.APPROVED,
        ProposalStatus.RUNNING,
    }
)
TERMINAL_STATUSES = frozenset(set(ProposalStatus) - LIVE_STATUSES)
REFUSED_STATUSES = frozenset(
    {
        ProposalStatus.NEEDS_INPUT,
        ProposalStatus.SCOPE_INVALID,
        ProposalStatus.POLICY_DENIED,
        ProposalStatus.BLOCKED,
    }
)


class Outcome(StrEnum):
    """What ``propose`` did with a call."""

    CREATED = "created"
    DUPLICATE = "duplicate"
    NEEDS_INPUT = "needs_input"
    SCOPE_INVALID = "scope_invalid"
    POLICY_DENIED = "policy_denied"
    BLOCKED = "blocked"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Proposal:
    """One intended tool call and where it stands."""

    id: int
    tool: str
    tool_version: str | None
    risk_tier: str
    approval_mode: str
    status: ProposalStatus
    actor: Actor
    scopes: list[str]
    context: dict[str, Any]
    input: dict[str, Any]
    input_hash: str
    idempotency_key: str | None
    errors: list[dict[str, str]] | None
    reason: str | None
    preview: str | None
    result: Any
    attempts: int
    max_attempts: int
    due_at: dt.datetime | None
    expires_at: dt.datetime
    defer_until: dt.datetime | None
    decided_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Proposal:
        m = row._mapping
        return cls(
            id=m["id"],
            tool=m["tool"],
            tool_version=m["tool_version"],
            risk_tier=m["risk_tier"],
            approval_mode=m["approval_mode"],
            status=ProposalStatus(m["status"]),
            actor=Actor(m["actor_id"], m["actor_kind"]),
            scopes=list(m["scopes"] or []),
            context=dict(m["context"] or {}),
            input=dict(m["input"] or {}),
            input_hash=m["input_hash"],
            idempotency_key=m["idempotency_key"],
            errors=m["errors"],
            reason=m["reason"],
            preview=m["preview"],
            result=m["result"],
            attempts=m["attempts"],
            max_attempts=m["max_attempts"],
            due_at=m["due_at"],
            expires_at=m["expires_at"],
            defer_until=m["defer_until"],
            decided_by=m["decided_by"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )

    def as_dict(self, *, include_input: bool = True) -> dict[str, Any]:
        """JSON-able view; ``input`` is the stored input, secrets included."""
        data: dict[str, Any] = {
            "id": self.id,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "risk_tier": self.risk_tier,
            "approval_mode": self.approval_mode,
            "status": self.status.value,
            "actor": {"id": self.actor.id, "kind": self.actor.kind.value},
            "scopes": self.scopes,
            "context": self.context,
            "input_hash": self.input_hash,
            "idempotency_key": self.idempotency_key,
            "errors": self.errors,
            "reason": self.reason,
            "preview": self.preview,
            "result": self.result,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "due_at": iso(self.due_at),
            "expires_at": iso(self.expires_at),
            "defer_until": iso(self.defer_until),
            "decided_by": self.decided_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if include_input:
            data["input"] = self.input
        return data


@dataclass(frozen=True)
class Event:
    """One append-only audit record about a proposal."""

    id: int
    proposal_id: int
    seq: int
    type: str
    actor: Actor
    from_status: str | None
    to_status: str | None
    reason: str | None
    input_hash: str | None
    attempt: int | None
    data: dict[str, Any] | None
    at: dt.datetime
    hash: str

    @classmethod
    def from_row(cls, row: Row[Any]) -> Event:
        m = row._mapping
        return cls(
            id=m["id"],
            proposal_id=m["proposal_id"],
            seq=m["seq"],
            type=m["type"],
            actor=Actor(m["actor_id"], m["actor_kind"]),
            from_status=m["from_status"],
            to_status=m["to_status"],
            reason=m["reason"],
            input_hash=m["input_hash"],
            attempt=m["attempt"],
            data=m["data"],
            at=m["at"],
            hash=m["hash"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "actor": {"id": self.actor.id, "kind": self.actor.kind.value},
            "from_status": self.from_status,
            "to_status": self.to_status,
            "reason": self.reason,
            "input_hash": self.input_hash,
            "attempt": self.attempt,
            "data": self.data,
            "at": iso(self.at),
            "hash": self.hash,
        }


@dataclass(frozen=True)
class ProposeResult:
    """What ``propose`` answers: the outcome and, unless unsupported, the row."""

    outcome: Outcome
    proposal: Proposal | None
    errors: list[dict[str, str]] = field(default_factory=list)
    reason: str | None = None

    @property
    def status(self) -> str | None:
        return self.proposal.status.value if self.proposal else None

    @property
    def refused(self) -> bool:
        """True when governance refused the call (nothing will run).

        A duplicate of a call that was refused at validation is refused too.
        """
        if self.outcome is Outcome.DUPLICATE and self.proposal is not None:
            return self.proposal.status in REFUSED_STATUSES
        return self.outcome is not Outcome.CREATED

    def as_dict(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal.id if self.proposal else None,
            "outcome": self.outcome.value,
            "status": self.status,
            "errors": self.errors,
            "reason": self.reason,
            "preview": self.proposal.preview if self.proposal else None,
        }
