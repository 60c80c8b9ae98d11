"""The checks the executor repeats just before a run, on a claimed proposal."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Row, bindparam, select

from cairnloop_core.actors import Actor, ActorKind, Deny
from cairnloop_core.inputs import field_errors, hash_input, stored_input
from cairnloop_core.registry import LoadedTool, Registry
from cairnloop_core.schema import events, utcnow
from cairnloop_core.spec import ApprovalMode, RiskTier, ToolSpec

__all__ = ["RecheckFailed", "approved_input_hashes", "recheck"]

logger = logging.getLogger(__name__)

TIER_ORDER = list(RiskTier)


class RecheckFailed(Exception):
    """A re-check failed; the message is the readable reason."""


_APPROVED_HASHES = (
    select(events.c.proposal_id, events.c.input_hash)
    .where(
        events.c.proposal_id.in_(bindparam("ids", expanding=True)),
        events.c.type == "approved",
    )
    .order_by(events.c.proposal_id, events.c.seq)
)


def approved_input_hashes(
    connection: Connection, proposal_ids: list[int]
) -> dict[int, str]:
    """The input hash each proposal's latest ``approved`` event recorded.

    One query for a whole batch; a proposal without an ``approved`` event is
    missing from the answer.
    """
    found: dict[int, str] = {}
    for proposal_id, input_hash in connection.execute(
        _APPROVED_HASHES, {"ids": proposal_ids}
    ):
        found[proposal_id] = input_hash
    return found


def recheck(
    row: Row[Any],
    loaded: LoadedTool | None,
    registry: Registry,
    *,
    approved_hash: str | None,
) -> BaseModel:
    """Check a claimed proposal again and return its validated input.

    In order: the tool is still installed; its tier and approval mode have
    not tightened; the TTL has not passed; the input is the one that was
    approved; it still validates and means the same; the actor still holds
    the required scopes (the host's current grants when a
    ``cairnloop_actor_scopes`` hook answers, else the proposal's snapshot);
    the authorize hooks still allow. ``approved_hash`` is the input hash the
    latest ``approved`` event recorded (see ``approved_input_hashes``).
    Raises ``RecheckFailed`` with the reason at the first check that fails.
    """
    if loaded is None:
        raise RecheckFailed(
            f"Tool {row.tool!r} is not installed in the worker that claimed "
            "the proposal."
        )
    _check_tightening(row, loaded.spec)
    if row.expires_at <= utcnow():
        raise RecheckFailed("The TTL passed before the proposal could run.")
    _check_input_approved(row, approved_hash)
    model = _validate_input(row, loaded.spec)
    _check_permission(row, loaded, registry)
    return model


def _check_tightening(row: Row[Any], spec: ToolSpec) -> None:
    try:
        approved_tier = RiskTier(row.risk_tier)
        approved_mode = ApprovalMode(row.approval_mode)
    except ValueError:
        raise RecheckFailed(
            "The proposal records an unknown risk tier or approval mode."
        ) from None
    if TIER_ORDER.index(spec.risk_tier) > TIER_ORDER.index(approved_tier):
        raise RecheckFailed(
            f"Tool {row.tool!r} is now {spec.risk_tier.value}, riskier than "
            f"{approved_tier.value} when it was approved."
        )
    if spec.approval_mode.strictness > approved_mode.strictness:
        raise RecheckFailed(
            f"Tool {row.tool!r} now needs {spec.approval_mode.value}, stricter "
            f"than {approved_mode.value} when it was approved."
        )


def _check_input_approved(row: Row[Any], approved_hash: str | None) -> None:
    # The approved event carries the hash of the input at approval time, so
    # editing both the input and its hash on the row is caught too.
    if hash_input(row.input) != row.input_hash or approved_hash != row.input_hash:
        raise RecheckFailed("The input differs from the input that was approved.")


def _validate_input(row: Row[Any], spec: ToolSpec) -> BaseModel:
    try:
        model = spec.input_model.model_validate(row.input)
    except Exception as exc:
        detail = (
            "; ".join(f"{e['field']}: {e['reason']}" for e in field_errors(exc))
            if isinstance(exc, ValidationError)
            else f"its validation raised {type(exc).__name__}"
        )
        raise RecheckFailed(
            f"The input is no longer valid for tool {row.tool!r}: {detail}"
        ) from None
    if hash_input(stored_input(model)) != row.input_hash:
        raise RecheckFailed(
            f"The input no longer means what was approved: tool {row.tool!r} "
            "now reads it differently."
        )
    return model


def _check_permission(row: Row[Any], loaded: LoadedTool, registry: Registry) -> None:
    actor = Actor(row.actor_id, ActorKind(row.actor_kind))
    try:
        current = registry.current_scopes(actor)
    except Exception as exc:
        logger.warning(
            "The host's actor-scopes hook raised %s for %s",
            type(exc).__name__,
            actor,
            extra={"event": "actor_scopes_hook_failed", "proposal_id": row.id},
        )
        raise RecheckFailed(
            f"The current scopes of {actor} could not be read."
        ) from None
    held = set(current if current is not None else row.scopes)
    try:
        required = registry.required_scopes(loaded)
    except Exception:
        raise RecheckFailed("The scope check of a plugin failed.") from None
    missing = sorted(required - held)
    if missing:
        raise RecheckFailed(f"The actor no longer holds scopes: {', '.join(missing)}.")

    verdict = registry.authorize(
        loaded, actor, {**(row.context or {}), "scopes": sorted(held)}
    )
    if isinstance(verdict, Deny):
        raise RecheckFailed(f"Authorization now denies the call: {verdict.reason}")
