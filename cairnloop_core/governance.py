"""Proposing tool calls and deciding on them: the validation gates, idempotency,
decisions as compare-and-set, and expiry."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Row, select, text
from sqlalchemy.exc import IntegrityError

from cairnloop_core.actors import SYSTEM, Actor, ActorKind, Deny
from cairnloop_core.errors import DecisionRefused, IdempotencyConflict, InvalidArgument
from cairnloop_core.inputs import (
    UNSTORABLE_TEXT,
    canonical_json,
    field_errors,
    hash_input,
    preview_fallback,
    stored_input,
    unstorable_text,
)
from cairnloop_core.proposals import (
    Outcome,
    Proposal,
    ProposalStatus,
    ProposeResult,
    check_proposal_id,
)
from cairnloop_core.registry import LoadedTool, Registry
from cairnloop_core.schema import proposals, utcnow
from cairnloop_core.settings import Settings, check_ttl
from cairnloop_core.spec import ApprovalMode
from cairnloop_core.store import EventDraft, insert_proposal, load_proposal, transition
from cairnloop_core.telemetry import record

__all__ = ["NOTIFY_CHANNEL", "Governance"]

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "cairnloop_work"
MAX_KEY_LENGTH = 200
MAX_SCOPE_LENGTH = 200
EXPIRY_BATCH = 500
S = ProposalStatus


def _check_text(field: str, value: Any, limit: int, *, required: bool) -> str | None:
    # An optional text that is given must still say something: a blank
    # idempotency key or note is a mistake, not a request for none.
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(field, "must be non-blank text")
    if len(value) > limit:
        raise InvalidArgument(
            field, f"must be at most {limit} characters (it has {len(value)})"
        )
    if unstorable_text(value):
        raise InvalidArgument(field, UNSTORABLE_TEXT)
    return value.strip()


def _check_json(field: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(field, "must be a JSON object")
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        raise InvalidArgument(
            field, "must hold only JSON values (no NaN, infinity or other objects)"
        ) from None
    except RecursionError:
        raise InvalidArgument(field, "is nested too deeply") from None
    if unstorable_text(value):
        raise InvalidArgument(field, UNSTORABLE_TEXT)
    return dict(value)


def _unstorable_fields(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """Fields whose validated value JSON cannot hold, such as NaN from "nan"."""
    errors = []
    for name, value in data.items():
        try:
            canonical_json(value)
        except (TypeError, ValueError):
            errors.append(
                {
                    "field": name,
                    "reason": "holds a value JSON cannot store, such as NaN "
                    "or infinity",
                }
            )
    return errors


def _check_scopes(scopes: Iterable[str] | None) -> list[str]:
    if scopes is None:
        return []
    if isinstance(scopes, str | bytes) or not isinstance(scopes, Iterable):
        raise InvalidArgument("scopes", "must be a list of scope strings")
    given = list(scopes)
    for scope in given:
        if not isinstance(scope, str) or not scope.strip():
            raise InvalidArgument("scopes", "each scope must be non-blank text")
        if len(scope) > MAX_SCOPE_LENGTH:
            raise InvalidArgument(
                "scopes", f"each scope must be at most {MAX_SCOPE_LENGTH} characters"
            )
        if unstorable_text(scope):
            raise InvalidArgument("scopes", UNSTORABLE_TEXT)
    return sorted(set(given))


def _as_actor(value: Actor | str, field: str = "actor") -> Actor:
    if isinstance(value, Actor):
        return value
    if isinstance(value, str):
        return Actor(value)
    raise InvalidArgument(field, "must be an Actor or an actor id")


class Governance:
    """The governed lifecycle up to execution, on one database."""

    def __init__(self, engine: Engine, registry: Registry, settings: Settings) -> None:
        self.engine = engine
        self.registry = registry
        self.settings = settings
        self._wake_callbacks: list[Any] = []

    # -- proposing -------------------------------------------------------------

    def propose(
        self,
        tool: str,
        *,
        actor: Actor | str,
        input: Mapping[str, Any] | None,
        scopes: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        ttl: dt.timedelta | None = None,
    ) -> ProposeResult:
        """Validate a tool call and persist it as a proposal.

        Gates run in order: unknown tool (nothing persisted), invalid input,
        missing scopes, authorization, always-blocked. Raises
        ``InvalidArgument`` for malformed arguments and ``IdempotencyConflict``
        when ``idempotency_key`` was used for a different call.
        """
        if not isinstance(tool, str) or not tool:
            raise InvalidArgument("tool", "must be a tool name")
        actor = _as_actor(actor)
        raw_input = _check_json("input", input)
        granted = _check_scopes(scopes)
        context_data = _check_json("context", context)
        key = _check_text(
            "idempotency_key", idempotency_key, MAX_KEY_LENGTH, required=False
        )
        if ttl is not None:
            check_ttl(ttl)

        loaded = self.registry.get_tool(tool)
        if loaded is None:
            record("proposal_unsupported", tool=tool)
            return ProposeResult(
                Outcome.UNSUPPORTED,
                None,
                reason=f"Tool {tool!r} is not installed; "
                "run 'cairnloop tools' to see the tools you can use.",
            )

        verdict = self._evaluate(loaded, actor, raw_input, granted, context_data)
        return self._persist(
            loaded, actor, granted, context_data, key, ttl or self.settings.ttl, verdict
        )

    def _evaluate(
        self,
        loaded: LoadedTool,
        actor: Actor,
        raw_input: dict[str, Any],
        granted: list[str],
        context: dict[str, Any],
    ) -> dict[str, Any]:
        spec = loaded.spec
        try:
            model = spec.input_model.model_validate(raw_input)
        except ValidationError as exc:
            return {
                "outcome": Outcome.NEEDS_INPUT,
                "input": raw_input,
                "errors": field_errors(exc),
                "reason": "The input is not valid; see the errors for each field.",
            }

        data = stored_input(model)
        unstorable = _unstorable_fields(data)
        if unstorable:
            return {
                "outcome": Outcome.NEEDS_INPUT,
                "input": raw_input,
                "errors": unstorable,
                "reason": "The input is not valid; see the errors for each field.",
            }
        verdict: dict[str, Any] = {"input": data, "model": model}
        verdict["preview"] = self._preview(loaded, model)
        try:
            missing = sorted(self.registry.required_scopes(loaded) - set(granted))
        except Exception as exc:
            logger.warning(
                "Scope hook for tool %r failed: %s",
                spec.name,
                exc,
                extra={"event": "scope_hook_failed", "tool": spec.name},
            )
            return verdict | {
                "outcome": Outcome.POLICY_DENIED,
                "reason": "The scope check of a plugin failed; the call is denied.",
            }
        if missing:
            return verdict | {
                "outcome": Outcome.SCOPE_INVALID,
                "reason": "Missing scopes: " + ", ".join(missing),
                "missing_scopes": missing,
            }
        decision = self.registry.authorize(
            loaded, actor, {**context, "scopes": granted}
        )
        if isinstance(decision, Deny):
            return verdict | {
                "outcome": Outcome.POLICY_DENIED,
                "reason": decision.reason,
            }
        if spec.approval_mode is ApprovalMode.ALWAYS_BLOCK:
            return verdict | {
                "outcome": Outcome.BLOCKED,
                "reason": f"Tool {spec.name!r} is {spec.risk_tier.value} and always "
                "blocked; nobody can approve it.",
            }
        return verdict | {"outcome": Outcome.CREATED}

    def _preview(self, loaded: LoadedTool, model: Any) -> str:
        try:
            text_ = self.registry.preview(loaded, model)
        except Exception as exc:
            logger.warning(
                "Preview hook of tool %r failed: %s",
                loaded.spec.name,
                type(exc).__name__,
                extra={"event": "preview_hook_failed", "tool": loaded.spec.name},
            )
            text_ = None
        return text_ or preview_fallback(loaded.spec.title, model)

    def _persist(
        self,
        loaded: LoadedTool,
        actor: Actor,
        granted: list[str],
        context: dict[str, Any],
        key: str | None,
        ttl: dt.timedelta,
        verdict: dict[str, Any],
    ) -> ProposeResult:
        spec = loaded.spec
        outcome: Outcome = verdict["outcome"]
        data = verdict["input"]
        input_hash = hash_input(data)
        request_hash = hash_input(
            {"tool": spec.name, "actor": str(actor), "input": data}
        )
        live = outcome is Outcome.CREATED
        # A call with a caller key is identified by its key alone: it does not
        # dedupe against unkeyed calls of the same input, nor against other keys.
        dedupe_key = request_hash if live and key is None else None

        now = utcnow()
        if live and spec.approval_mode is ApprovalMode.AUTO:
            status, due_at = S.APPROVED, now
        elif live:
            status, due_at = S.PENDING, None
        else:
            status, due_at = S(outcome.value), None
        drafts = [
            EventDraft(
                "proposed",
                actor,
                None,
                S.PENDING if live else status,
                reason=None if live else verdict.get("reason"),
                data={"outcome": outcome.value, "preview": verdict.get("preview")},
            )
        ]
        if status is S.APPROVED:
            drafts.append(
                EventDraft(
                    "approved",
                    SYSTEM,
                    S.PENDING,
                    S.APPROVED,
                    reason=f"approval mode auto ({spec.risk_tier.value})",
                )
            )
        values = {
            "tool": spec.name,
            "tool_version": spec.version,
            "risk_tier": spec.risk_tier.value,
            "approval_mode": spec.approval_mode.value,
            "status": status.value,
            "actor_id": actor.id,
            "actor_kind": actor.kind.value,
            "scopes": granted,
            "context": context,
            "input": data,
            "input_hash": input_hash,
            "request_hash": request_hash,
            "idempotency_key": key,
            "dedupe_key": dedupe_key,
            "errors": verdict.get("errors"),
            "reason": verdict.get("reason") if not live else None,
            "preview": verdict.get("preview"),
            "max_attempts": spec.max_attempts,
            "due_at": due_at,
            "expires_at": now + ttl,
            "decided_by": SYSTEM.id if status is S.APPROVED else None,
            "created_at": now,
        }
        # One transaction: a duplicate of a caller key or of a live proposal
        # answers with the existing row, and the unique keys settle races.
        try:
            with self.engine.begin() as connection:
                duplicate = self._duplicate_row(connection, key, dedupe_key)
                if duplicate is None:
                    proposal_id = insert_proposal(connection, values, drafts)
                    if status is S.APPROVED:
                        self._notify(connection)
                    row = load_proposal(connection, proposal_id)
        except IntegrityError:
            with self.engine.connect() as connection:
                duplicate = self._duplicate_row(connection, key, dedupe_key)
                connection.rollback()
            if duplicate is None:
                raise
        if duplicate is not None:
            return self._duplicate_result(duplicate, key, request_hash)

        proposal = Proposal.from_row(row)
        record(
            "proposal_created" if live else "proposal_refused",
            tool=spec.name,
            proposal_id=proposal.id,
            outcome=outcome.value,
        )
        if status is S.APPROVED:
            self.wake()
        return ProposeResult(
            outcome,
            proposal,
            errors=verdict.get("errors") or [],
            reason=None if live else verdict.get("reason"),
        )

    def _duplicate_row(
        self, connection: Connection, key: str | None, dedupe_key: str | None
    ) -> Row[Any] | None:
        if key is not None:
            query = select(proposals).where(proposals.c.idempotency_key == key)
        elif dedupe_key is not None:
            query = select(proposals).where(proposals.c.dedupe_key == dedupe_key)
        else:
            return None
        return connection.execute(query).first()

    def _duplicate_result(
        self, row: Row[Any], key: str | None, request_hash: str
    ) -> ProposeResult:
        if row.request_hash != request_hash:
            raise IdempotencyConflict(key or "", row.id)
        proposal = Proposal.from_row(row)
        record("proposal_duplicate", tool=proposal.tool, proposal_id=proposal.id)
        return ProposeResult(
            Outcome.DUPLICATE,
            proposal,
            errors=proposal.errors or [],
            reason=proposal.reason,
        )

    # -- deciding --------------------------------------------------------------

    def approve(
        self, proposal_id: int, *, actor: Actor | str, note: str | None = None
    ) -> Proposal:
        """Approve a pending proposal; the executor will run it.

        Raises ``DecisionRefused`` if it is no longer pending, has expired,
        or ``actor`` proposed it (unless self-approval is allowed).
        """
        actor = self._decider(actor)
        note = _check_text(
            "note", note, self.settings.max_reason_length, required=False
        )
        proposal_id = check_proposal_id(proposal_id)

        def guard(row: Any) -> None:
            if not self.settings.allow_self_approval and row.actor_id == actor.id:
                raise DecisionRefused(
                    proposal_id,
                    f"Proposal {proposal_id} was proposed by {actor.id!r}, who "
                    "cannot also approve it; another operator must decide.",
                    row.status,
                )
            if row.expires_at <= utcnow():
                raise DecisionRefused(
                    proposal_id,
                    f"Proposal {proposal_id} has passed its TTL and can no longer be "
                    "approved; propose it again if it is still wanted.",
                    row.status,
                )

        now = utcnow()
        return self._decide(
            proposal_id,
            expected=(S.PENDING,),
            draft=EventDraft("approved", actor, S.PENDING, S.APPROVED, reason=note),
            values={"due_at": now, "decided_by": actor.id},
            guard=guard,
            notify=True,
        )

    def reject(self, proposal_id: int, *, actor: Actor | str, reason: str) -> Proposal:
        """Reject a pending or deferred proposal, with a reason."""
        actor = self._decider(actor)
        reason = self._reason(reason)
        proposal_id = check_proposal_id(proposal_id)
        return self._decide(
            proposal_id,
            expected=(S.PENDING, S.DEFERRED),
            draft=EventDraft("rejected", actor, None, S.REJECTED, reason=reason),
            values={"decided_by": actor.id, "reason": reason, "dedupe_key": None},
        )

    def defer(
        self,
        proposal_id: int,
        *,
        actor: Actor | str,
        reason: str,
        until: dt.datetime | None = None,
    ) -> Proposal:
        """Set a pending proposal aside, with a reason and an optional wake time.

        A deferred proposal returns to pending at ``until`` (or by ``reopen``)
        and expires with its TTL like a pending one.
        """
        actor = self._decider(actor)
        reason = self._reason(reason)
        proposal_id = check_proposal_id(proposal_id)
        if until is not None:
            if not isinstance(until, dt.datetime) or until.tzinfo is None:
                raise InvalidArgument("until", "must be a timezone-aware date and time")
            if until <= utcnow():
                raise InvalidArgument("until", "must be in the future")
        return self._decide(
            proposal_id,
            expected=(S.PENDING,),
            draft=EventDraft(
                "deferred",
                actor,
                S.PENDING,
                S.DEFERRED,
                reason=reason,
                data={"until": until.isoformat()} if until else None,
            ),
            values={"decided_by": actor.id, "defer_until": until},
        )

    def reopen(self, proposal_id: int, *, actor: Actor | str) -> Proposal:
        """Return a deferred proposal to pending."""
        actor = self._decider(actor)
        proposal_id = check_proposal_id(proposal_id)
        return self._decide(
            proposal_id,
            expected=(S.DEFERRED,),
            draft=EventDraft("reopened", actor, S.DEFERRED, S.PENDING),
            values={"defer_until": None, "decided_by": None},
        )

    def _decider(self, actor: Actor | str) -> Actor:
        actor = _as_actor(actor)
        if actor.kind is ActorKind.AGENT:
            raise InvalidArgument(
                "actor", "agents cannot decide on proposals; an operator must"
            )
        return actor

    def _reason(self, reason: Any) -> str:
        checked = _check_text(
            "reason", reason, self.settings.max_reason_length, required=True
        )
        assert checked is not None
        return checked

    def _decide(
        self,
        proposal_id: int,
        *,
        expected: tuple[ProposalStatus, ...],
        draft: EventDraft,
        values: Mapping[str, Any],
        guard: Any = None,
        notify: bool = False,
    ) -> Proposal:
        with self.engine.begin() as connection:
            row = load_proposal(connection, proposal_id)
            if row.status in expected and guard is not None:
                guard(row)
            result = transition(
                connection,
                proposal_id,
                expected=expected,
                drafts=[draft],
                values=values,
                row=row,
            )
            if not result.applied:
                raise _refusal(proposal_id, expected, result.row.status, draft.type)
            if notify:
                self._notify(connection)
        proposal = Proposal.from_row(result.row)
        record(
            f"proposal_{draft.type}",
            tool=proposal.tool,
            proposal_id=proposal.id,
            actor=draft.actor.id,
        )
        if notify:
            self.wake()
        return proposal

    # -- expiry ----------------------------------------------------------------

    def expire_due(self, now: dt.datetime | None = None) -> int:
        """Expire pending and deferred proposals past their TTL, and return
        deferred proposals whose ``until`` has come to pending.

        Returns how many proposals changed. Safe to run from any number of
        workers at once: each change is a compare-and-set.
        """
        if now is None:
            now = utcnow()
        elif not isinstance(now, dt.datetime) or now.tzinfo is None:
            raise InvalidArgument("now", "must be a timezone-aware date and time")
        changed = 0
        after = 0
        while True:
            with self.engine.connect() as connection:
                due = connection.execute(
                    select(proposals.c.id)
                    .where(
                        proposals.c.id > after,
                        proposals.c.status.in_([S.PENDING.value, S.DEFERRED.value]),
                        (proposals.c.expires_at <= now)
                        | (proposals.c.defer_until <= now),
                    )
                    .order_by(proposals.c.id)
                    .limit(EXPIRY_BATCH)
                ).all()
                connection.rollback()
            changed += sum(self._expire_one(row.id, now) for row in due)
            if len(due) < EXPIRY_BATCH:
                return changed
            after = due[-1].id

    def _expire_one(self, proposal_id: int, now: dt.datetime) -> bool:
        # The row is read again under lock: a decision may have moved it on
        # since it was found due.
        with self.engine.begin() as connection:
            row = load_proposal(connection, proposal_id, for_update=True)
            if row.status not in (S.PENDING, S.DEFERRED):
                return False
            if row.expires_at <= now:
                draft = EventDraft(
                    "expired", SYSTEM, row.status, S.EXPIRED, reason="the TTL passed"
                )
                values: dict[str, Any] = {
                    "dedupe_key": None,
                    "reason": "The TTL passed before a decision.",
                }
            elif (
                row.status == S.DEFERRED
                and row.defer_until is not None
                and row.defer_until <= now
            ):
                draft = EventDraft(
                    "reopened",
                    SYSTEM,
                    S.DEFERRED,
                    S.PENDING,
                    reason="the deferral ended",
                )
                values = {"defer_until": None, "decided_by": None}
            else:
                return False
            result = transition(
                connection,
                proposal_id,
                expected=(row.status,),
                drafts=[draft],
                values=values,
                row=row,
            )
        if result.applied:
            record(f"proposal_{draft.type}", tool=row.tool, proposal_id=proposal_id)
        return result.applied

    # -- wake-ups --------------------------------------------------------------

    def add_wake_callback(self, callback: Any) -> None:
        """Call ``callback()`` whenever work becomes due in this process."""
        self._wake_callbacks.append(callback)

    def remove_wake_callback(self, callback: Any) -> None:
        if callback in self._wake_callbacks:
            self._wake_callbacks.remove(callback)

    def wake(self) -> None:
        for callback in list(self._wake_callbacks):
            callback()

    def _notify(self, connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _refusal(
    proposal_id: int, expected: tuple[ProposalStatus, ...], status: str, verb: str
) -> DecisionRefused:
    wanted = " or ".join(s.value for s in expected)
    return DecisionRefused(
        proposal_id,
        f"Proposal {proposal_id} is no longer {wanted} (it is {status}); "
        f"it cannot be {verb} and nothing was changed.",
        status,
    )
