"""The executor, the only caller of a tool's ``run``: claim, re-check, run,
record, each run's outcome committed with its event."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import random
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine, Row, or_, select
from sqlalchemy.orm import Session

from cairnloop_core.actors import SYSTEM, Actor, Deny
from cairnloop_core.errors import PermanentToolError, RetryableToolError
from cairnloop_core.hookspecs import RunContext
from cairnloop_core.inputs import canonical_json, field_errors, hash_input, stored_input
from cairnloop_core.proposals import ProposalStatus
from cairnloop_core.registry import LoadedTool, Registry
from cairnloop_core.schema import events, proposals, utcnow
from cairnloop_core.settings import Settings
from cairnloop_core.spec import ApprovalMode, RiskTier
from cairnloop_core.store import EventDraft, transition
from cairnloop_core.telemetry import record, span

__all__ = ["Executor", "RunOutcome"]

logger = logging.getLogger(__name__)

S = ProposalStatus
TIER_ORDER = list(RiskTier)
MAX_REASON = 2000


@dataclass(frozen=True)
class RunOutcome:
    """What one executor step did to one proposal."""

    proposal_id: int
    status: str
    reason: str | None = None


class _Invalid(Exception):
    """A re-check failed; the message is the readable reason."""


class _Failure(Exception):
    def __init__(
        self, reason: str, *, retryable: bool, retry_after: float | None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def run_key(proposal_id: int) -> str:
    """The idempotency key every attempt at one proposal runs with."""
    return f"cairnloop-proposal-{proposal_id}"


class Executor:
    """Claims due proposals one at a time and runs them exactly once.

    Transactional tools run inside the claim transaction: their writes, the
    outcome and the event commit together or not at all. Other tools run
    under a lease, outside any transaction, bounded by their timeout.
    """

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        settings: Settings,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="cairnloop-run"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- claiming ----------------------------------------------------------------

    def run_once(self) -> RunOutcome | None:
        """Claim one due proposal and take it to its next state.

        Returns ``None`` when nothing is due.
        """
        leased = None
        with self.engine.connect() as connection, connection.begin():
            row = self._claim(connection)
            if row is None:
                return None
            loaded = self.registry.get_tool(row.tool)
            try:
                model = self._recheck(connection, row, loaded)
            except _Invalid as exc:
                outcome = self._invalidate(connection, row, str(exc))
            else:
                assert loaded is not None
                if loaded.spec.transactional:
                    outcome = self._run_transactional(connection, row, loaded, model)
                else:
                    leased = self._lease(connection, row, loaded)
        if leased is None:
            self._report(outcome, row.tool)
            return outcome
        assert loaded is not None
        return self._run_leased(leased, loaded, model)

    def drain(self, limit: int | None = None) -> list[RunOutcome]:
        """Run due proposals until none is left (or ``limit`` were handled)."""
        done: list[RunOutcome] = []
        while limit is None or len(done) < limit:
            outcome = self.run_once()
            if outcome is None:
                break
            done.append(outcome)
        return done

    def _claim(self, connection: Connection) -> Row[Any] | None:
        now = utcnow()
        query = (
            select(proposals)
            .where(
                or_(
                    (proposals.c.status == S.APPROVED.value)
                    & (proposals.c.due_at <= now),
                    (proposals.c.status == S.RUNNING.value)
                    & (proposals.c.lease_expires_at <= now),
                )
            )
            .order_by(proposals.c.due_at, proposals.c.id)
            .limit(1)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return connection.execute(query).first()

    # -- re-checking ---------------------------------------------------------------

    def _recheck(
        self, connection: Connection, row: Row[Any], loaded: LoadedTool | None
    ) -> BaseModel:
        if loaded is None:
            raise _Invalid(f"Tool {row.tool!r} is no longer installed.")
        spec = loaded.spec
        if TIER_ORDER.index(spec.risk_tier) > TIER_ORDER.index(RiskTier(row.risk_tier)):
            raise _Invalid(
                f"Tool {row.tool!r} is now {spec.risk_tier.value}, riskier than "
                f"{row.risk_tier} when it was approved."
            )
        if spec.approval_mode.strictness > ApprovalMode(row.approval_mode).strictness:
            raise _Invalid(
                f"Tool {row.tool!r} now needs {spec.approval_mode.value}, stricter "
                f"than {row.approval_mode} when it was approved."
            )
        if row.expires_at <= utcnow():
            raise _Invalid("The TTL passed before the proposal could run.")

        approved_hash = connection.execute(
            select(events.c.input_hash)
            .where(events.c.proposal_id == row.id, events.c.type == "approved")
            .order_by(events.c.seq.desc())
            .limit(1)
        ).scalar()
        if hash_input(row.input) != row.input_hash or approved_hash != row.input_hash:
            raise _Invalid("The input differs from the input that was approved.")
        try:
            model = spec.input_model.model_validate(row.input)
        except ValidationError as exc:
            raise _Invalid(
                f"The input is no longer valid for tool {row.tool!r}: "
                f"{_errors_text(exc)}"
            ) from None
        if hash_input(stored_input(model)) != row.input_hash:
            raise _Invalid("The input no longer means what was approved.")

        actor = Actor(row.actor_id, row.actor_kind)
        current = self.registry.current_scopes(actor)
        held = set(current if current is not None else row.scopes)
        try:
            required = self.registry.required_scopes(loaded)
        except Exception:
            raise _Invalid("The scope check of a plugin failed.") from None
        missing = sorted(required - held)
        if missing:
            raise _Invalid(f"The actor no longer holds scopes: {', '.join(missing)}.")
        verdict = self.registry.authorize(
            loaded, actor, {**(row.context or {}), "scopes": sorted(held)}
        )
        if isinstance(verdict, Deny):
            raise _Invalid(f"Authorization now denies the call: {verdict.reason}")
        return model

    def _invalidate(
        self, connection: Connection, row: Row[Any], reason: str
    ) -> RunOutcome:
        result = transition(
            connection,
            row.id,
            expected=(row.status,),
            drafts=[
                EventDraft("invalidated", SYSTEM, None, S.INVALIDATED, reason=reason)
            ],
            values={"reason": reason, "dedupe_key": None, "lease_owner": None},
            row=row,
        )
        return RunOutcome(row.id, result.row.status, reason)

    # -- running -------------------------------------------------------------------

    def _context(
        self, row: Row[Any], attempt: int, session: Session | None
    ) -> RunContext:
        return RunContext(
            proposal_id=row.id,
            idempotency_key=run_key(row.id),
            attempt=attempt,
            actor=Actor(row.actor_id, row.actor_kind),
            context=dict(row.context or {}),
            session=session,
        )

    def _call(self, loaded: LoadedTool, model: BaseModel, context: RunContext) -> Any:
        try:
            result = self.registry.run(loaded, model, context.actor, context)
        except PermanentToolError as exc:
            raise _Failure(_text(exc), retryable=False, retry_after=None) from None
        except RetryableToolError as exc:
            raise _Failure(
                _text(exc), retryable=True, retry_after=exc.retry_after
            ) from None
        except Exception as exc:
            logger.warning(
                "Tool %r raised %s on proposal %s",
                loaded.spec.name,
                type(exc).__name__,
                context.proposal_id,
                exc_info=True,
                extra={"event": "run_raised", "proposal_id": context.proposal_id},
            )
            raise _Failure(
                f"The tool raised {type(exc).__name__}: {_text(exc)}",
                retryable=True,
                retry_after=None,
            ) from None
        try:
            canonical_json(result)
        except (TypeError, ValueError):
            raise _Failure(
                "The tool returned a result that is not JSON.",
                retryable=False,
                retry_after=None,
            ) from None
        return result

    def _run_transactional(
        self,
        connection: Connection,
        row: Row[Any],
        loaded: LoadedTool,
        model: BaseModel,
    ) -> RunOutcome:
        attempt = row.attempts + 1
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            with span(
                "cairnloop.run", tool=row.tool, proposal_id=row.id, attempt=attempt
            ):
                result = self._call(loaded, model, self._context(row, attempt, session))
            session.commit()
        except _Failure as exc:
            session.rollback()
            return self._record_failure(connection, row, loaded, attempt, exc)
        except Exception as exc:
            session.rollback()
            write_failure = _Failure(
                f"The tool's writes failed: {type(exc).__name__}",
                retryable=True,
                retry_after=None,
            )
            return self._record_failure(connection, row, loaded, attempt, write_failure)
        finally:
            session.close()
        return self._record_success(connection, row, attempt, result)

    def _lease(
        self, connection: Connection, row: Row[Any], loaded: LoadedTool
    ) -> Row[Any]:
        attempt = row.attempts + 1
        now = utcnow()
        lease = loaded.spec.timeout_seconds + self.settings.lease_margin_seconds
        recovered = row.status == S.RUNNING.value
        draft = EventDraft(
            "lease_recovered" if recovered else "started",
            SYSTEM,
            None,
            S.RUNNING,
            attempt=attempt,
            reason=f"lease of {row.lease_owner} expired" if recovered else None,
            data={"worker": self.worker_id},
        )
        result = transition(
            connection,
            row.id,
            expected=(row.status,),
            drafts=[draft],
            values={
                "attempts": attempt,
                "lease_owner": self.worker_id,
                "lease_expires_at": now + _seconds(lease),
            },
            row=row,
        )
        return result.row

    def _run_leased(
        self, row: Row[Any], loaded: LoadedTool, model: BaseModel
    ) -> RunOutcome:
        attempt = row.attempts
        context = self._context(row, attempt, None)
        future = self._pool.submit(self._call, loaded, model, context)
        try:
            with span(
                "cairnloop.run", tool=row.tool, proposal_id=row.id, attempt=attempt
            ):
                result = future.result(timeout=loaded.spec.timeout_seconds)
            failure = None
        except concurrent.futures.TimeoutError:
            # The thread cannot be stopped; it finishes on its own while the
            # retry runs with the same idempotency key.
            failure = _Failure(
                "The tool did not finish within "
                f"{loaded.spec.timeout_seconds:g} seconds.",
                retryable=True,
                retry_after=None,
            )
        except _Failure as exc:
            failure = exc

        with self.engine.begin() as connection:
            current = connection.execute(
                select(proposals).where(proposals.c.id == row.id)
            ).first()
            if current is None or current.lease_owner != self.worker_id:
                logger.warning(
                    "Lost the lease on proposal %s before recording its outcome",
                    row.id,
                    extra={"event": "lease_lost", "proposal_id": row.id},
                )
                return RunOutcome(row.id, current.status if current else "missing")
            if failure is not None:
                outcome = self._record_failure(
                    connection, current, loaded, attempt, failure
                )
            else:
                outcome = self._record_success(connection, current, attempt, result)
        self._report(outcome, row.tool)
        return outcome

    # -- recording -----------------------------------------------------------------

    def _record_success(
        self, connection: Connection, row: Row[Any], attempt: int, result: Any
    ) -> RunOutcome:
        transition(
            connection,
            row.id,
            expected=(row.status,),
            drafts=[
                EventDraft(
                    "succeeded",
                    SYSTEM,
                    None,
                    S.SUCCEEDED,
                    attempt=attempt,
                    data={"result": result},
                )
            ],
            values={
                "attempts": attempt,
                "result": result,
                "reason": None,
                "dedupe_key": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "due_at": None,
            },
            row=row,
        )
        return RunOutcome(row.id, S.SUCCEEDED.value)

    def _record_failure(
        self,
        connection: Connection,
        row: Row[Any],
        loaded: LoadedTool,
        attempt: int,
        failure: _Failure,
    ) -> RunOutcome:
        spec = loaded.spec
        reason = failure.reason[:MAX_REASON]
        common = {"attempts": attempt, "lease_owner": None, "lease_expires_at": None}
        if failure.retryable and attempt < row.max_attempts:
            delay = failure.retry_after
            if delay is None:
                ceiling = min(
                    spec.retry_max_seconds, spec.retry_base_seconds * 2 ** (attempt - 1)
                )
                delay = random.uniform(ceiling / 2, ceiling)
            due = utcnow() + _seconds(delay)
            draft = EventDraft(
                "attempt_failed",
                SYSTEM,
                None,
                S.APPROVED,
                reason=reason,
                attempt=attempt,
                data={"retry_at": due.isoformat()},
            )
            values = {**common, "due_at": due, "reason": reason}
            status = S.APPROVED
        else:
            if failure.retryable:
                reason = f"All {row.max_attempts} attempts failed; the last: {reason}"
            draft = EventDraft(
                "failed", SYSTEM, None, S.FAILED, reason=reason, attempt=attempt
            )
            values = {**common, "due_at": None, "reason": reason, "dedupe_key": None}
            status = S.FAILED
        transition(
            connection,
            row.id,
            expected=(row.status,),
            drafts=[draft],
            values=values,
            row=row,
        )
        return RunOutcome(row.id, status.value, reason)

    def _report(self, outcome: RunOutcome, tool: str) -> None:
        # Called only once the outcome's transaction has committed.
        record(
            f"proposal_{outcome.status}",
            tool=tool,
            proposal_id=outcome.proposal_id,
            reason=outcome.reason,
        )


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _text(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return message[:MAX_REASON]


def _errors_text(error: ValidationError) -> str:
    return "; ".join(f"{e['field']}: {e['reason']}" for e in field_errors(error))
