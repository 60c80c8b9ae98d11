"""The executor, the only caller of a tool's ``run``: claim a batch, re-check,
run and record, each outcome committed together with its event."""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from cairnloop_core.actors import SYSTEM, Actor, ActorKind
from cairnloop_core.errors import PermanentToolError, RetryableToolError, StorageError
from cairnloop_core.governance import NOTIFY_CHANNEL
from cairnloop_core.hookspecs import RunContext
from cairnloop_core.inputs import canonical_json
from cairnloop_core.proposals import ProposalStatus
from cairnloop_core.recheck import RecheckFailed, approved_input_hashes, recheck
from cairnloop_core.registry import LoadedTool, Registry
from cairnloop_core.schema import proposals, utcnow
from cairnloop_core.settings import Settings
from cairnloop_core.spec import ToolSpec
from cairnloop_core.store import EventDraft, Move, apply_moves, load_proposal
from cairnloop_core.telemetry import record, span

__all__ = [
    "Executor",
    "RunOutcome",
    "due_moments",
    "earliest",
    "retry_delay",
    "run_key",
]

logger = logging.getLogger(__name__)

S = ProposalStatus

# Due approvals and expired leases, oldest first. Built once: the executor
# runs it for every batch.
_DUE = (
    select(proposals)
    .where(
        or_(
            and_(
                proposals.c.status == S.APPROVED.value,
                proposals.c.due_at <= bindparam("now"),
            ),
            and_(
                proposals.c.status == S.RUNNING.value,
                proposals.c.lease_expires_at <= bindparam("now"),
            ),
        )
    )
    .order_by(proposals.c.due_at, proposals.c.id)
    .limit(bindparam("batch_size"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)


@dataclass(frozen=True)
class RunOutcome:
    """What one executor step did to one proposal.

    ``status`` is the proposal's status afterwards. ``event`` is the audit
    event the step committed (``succeeded``, ``attempt_failed``, ``released``,
    ``failed`` or ``invalidated``), or ``lease_lost`` when another worker had
    taken the proposal over and this step recorded nothing.
    """

    proposal_id: int
    status: str
    reason: str | None = None
    event: str = ""
    tool: str = ""
    attempt: int | None = None


class _Failure(Exception):
    """One attempt failed; ``error`` is the tool's exception, if it raised one."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.error = error


@dataclass
class _Leased:
    """A claimed proposal whose tool runs after the batch commits.

    ``move`` takes the lease, or invalidates the proposal when its re-check
    failed; then ``outcome`` is set and nothing runs.
    """

    row: Row[Any]
    move: Move
    outcome: RunOutcome | None = None
    loaded: LoadedTool | None = None
    model: BaseModel | None = None
    attempt: int = 0


def run_key(proposal_id: int) -> str:
    """The idempotency key every attempt at one proposal runs with."""
    return f"cairnloop-proposal-{proposal_id}"


def retry_delay(spec: ToolSpec, attempt: int) -> float:
    """Seconds to wait after failed ``attempt`` before the next one.

    Capped exponential backoff with jitter: the ceiling doubles from
    ``retry_base_seconds`` with each attempt up to ``retry_max_seconds``, and
    the delay is drawn uniformly from the upper half of it, so workers that
    failed together do not retry together.
    """
    exponent = min(max(attempt - 1, 0), 60)
    ceiling = min(spec.retry_max_seconds, spec.retry_base_seconds * 2.0**exponent)
    return random.uniform(ceiling / 2, ceiling)


def due_moments(now: dt.datetime) -> list[ScalarSelect[Any]]:
    """Subqueries for the first retry and lease expiry that fall due after
    ``now``; a moment already past means work became due since ``now``."""
    return [
        select(func.min(proposals.c.due_at))
        .where(proposals.c.status == S.APPROVED.value, proposals.c.due_at > now)
        .scalar_subquery(),
        select(func.min(proposals.c.lease_expires_at))
        .where(
            proposals.c.status == S.RUNNING.value,
            proposals.c.lease_expires_at > now,
        )
        .scalar_subquery(),
    ]


def earliest(
    connection: Connection, moments: list[ScalarSelect[Any]]
) -> dt.datetime | None:
    """The earliest of several moment subqueries, in one round trip."""
    row = connection.execute(select(*moments)).one()
    return min((m for m in row if m is not None), default=None)


class _Call:
    """One non-transactional run on its own daemon thread.

    A daemon thread, because a run that ignores its timeout cannot be
    killed; it must at least not keep the process alive.
    """

    def __init__(self, target: Callable[[], Any], name: str) -> None:
        self.finished = threading.Event()
        self.wake = threading.Event()
        self.result: Any = None
        self.failure: _Failure | None = None
        context = contextvars.copy_context()
        self._target = target
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._target()
        except _Failure as exc:
            self.failure = exc
        except BaseException as exc:
            self.failure = _Failure(
                f"The tool raised {type(exc).__name__}: {_text(exc)}",
                retryable=True,
                error=exc,
            )
        finally:
            self.finished.set()
            self.wake.set()


class Executor:
    """Claims due proposals in batches and takes each to its next state.

    One transaction claims up to ``Settings.batch_size`` proposals.
    Transactional tools run inside it, each in a savepoint of its own: a
    tool's writes, its outcome and its event commit together or not at all,
    and a failing tool rolls back only its own writes. Other tools run under
    a lease, outside any transaction, bounded by their timeout; a batch takes
    at most one such lease. Several threads may share one executor.
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
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._stopping = threading.Event()
        self._calls: set[_Call] = set()
        self._calls_lock = threading.RLock()

    def request_stop(self) -> None:
        """Cut waiting for runs in flight short to ``stop_grace_seconds``.

        A run that finishes within the grace is recorded as usual; one that
        does not is released for a retry with the same idempotency key.
        """
        self._stopping.set()
        with self._calls_lock:
            calls = list(self._calls)
        for call in calls:
            call.wake.set()

    def close(self) -> None:
        """Stop waiting for runs in flight; see ``request_stop``."""
        self.request_stop()

    # -- claiming ----------------------------------------------------------------

    def run_once(self) -> RunOutcome | None:
        """Claim one due proposal and take it to its next state.

        Returns ``None`` when nothing is due. Raises only when the database
        fails; the proposal then stays claimable (or its lease expires).
        """
        outcomes = self.run_batch(1)
        return outcomes[0] if outcomes else None

    def run_batch(self, limit: int | None = None) -> list[RunOutcome]:
        """Claim up to ``limit`` due proposals in one transaction and take each
        to its next state; return their outcomes, in the order handled.

        ``limit`` defaults to ``Settings.batch_size``. Every proposal is
        re-checked just before its run. Transactional runs and every outcome
        commit together at the end; a crash or a database error before then
        rolls the whole batch back, and every proposal in it stays claimable.
        A non-transactional run takes its lease in that transaction and runs
        after the commit. Returns an empty list when nothing is due.
        """
        size = self.settings.batch_size if limit is None else limit
        done: list[tuple[RunOutcome, _Failure | None]] = []
        leased: _Leased | None = None
        with self.engine.connect() as connection, connection.begin():
            rows = self._claim(connection, size)
            if not rows:
                return []
            approved = approved_input_hashes(connection, [row.id for row in rows])
            moves: list[Move] = []
            notify = False
            later: Row[Any] | None = None
            for row in rows:
                if done and self._stopping.is_set():
                    # Stopping: the rest stay claimable for another worker.
                    break
                loaded = self.registry.get_tool(row.tool)
                if self._needs_lease(row, loaded):
                    # One lease per batch, taken last, so that the
                    # transactional runs before it do not eat into it.
                    later = later or row
                    continue
                move, outcome, failure = self._step(
                    connection, row, loaded, approved.get(row.id)
                )
                moves.append(move)
                done.append((outcome, failure))
                notify = notify or outcome.status == S.APPROVED.value
            if later is not None and not (done and self._stopping.is_set()):
                leased = self._take_lease(later, approved.get(later.id))
                moves.append(leased.move)
                if leased.outcome is not None:
                    done.append((leased.outcome, None))
                    leased = None
                else:
                    notify = True
            self._write(connection, moves)
            if notify:
                # Idle workers learn when a retry or a lease falls due.
                _notify(connection)

        for outcome, failure in done:
            self._report(outcome, failure)
        outcomes = [outcome for outcome, _ in done]
        if leased is not None:
            outcomes.append(self._start_leased(leased))
        return outcomes

    def drain(self, limit: int | None = None) -> list[RunOutcome]:
        """Run due proposals until none is left (or ``limit`` were handled)."""
        done: list[RunOutcome] = []
        while limit is None or len(done) < limit:
            wanted = self.settings.batch_size
            if limit is not None:
                wanted = min(wanted, limit - len(done))
            outcomes = self.run_batch(wanted)
            if not outcomes:
                break
            done.extend(outcomes)
        return done

    def next_due(self) -> dt.datetime | None:
        """When the next retry or lease expiry falls due, if any is pending."""
        with self.engine.connect() as connection:
            moment = earliest(connection, due_moments(utcnow()))
            connection.rollback()
        return moment

    def _claim(self, connection: Connection, size: int) -> list[Row[Any]]:
        # On PostgreSQL the row locks are held until the batch commits, and
        # other workers skip those rows; on SQLite the transaction began with
        # BEGIN IMMEDIATE, so this worker is the only writer until then.
        query = _DUE_LOCKED if connection.dialect.name == "postgresql" else _DUE
        return list(connection.execute(query, {"now": utcnow(), "batch_size": size}))

    def _needs_lease(self, row: Row[Any], loaded: LoadedTool | None) -> bool:
        return (
            loaded is not None
            and not loaded.spec.transactional
            and not (row.status == S.RUNNING.value and row.attempts >= row.max_attempts)
        )

    def _step(
        self,
        connection: Connection,
        row: Row[Any],
        loaded: LoadedTool | None,
        approved_hash: str | None,
    ) -> tuple[Move, RunOutcome, _Failure | None]:
        """Re-check and run one claimed proposal whose tool needs no lease."""
        if row.status == S.RUNNING.value and row.attempts >= row.max_attempts:
            move, outcome = self._fail_abandoned(row)
            return move, outcome, None
        try:
            model = recheck(row, loaded, self.registry, approved_hash=approved_hash)
        except RecheckFailed as exc:
            move, outcome = self._invalidate(row, str(exc))
            return move, outcome, None
        assert loaded is not None
        return self._run_transactional(connection, row, loaded, model)

    def _write(self, connection: Connection, moves: list[Move]) -> None:
        # The rows are locked (or the SQLite write lock is held), so the
        # compare-and-set can only fail if something bypassed Cairnloop.
        applied = apply_moves(connection, moves)
        if applied != len(moves):
            ids = ", ".join(str(move.row.id) for move in moves)
            raise StorageError(
                f"A proposal among {ids} changed while this worker held it; "
                "nothing was recorded."
            )

    # -- running -------------------------------------------------------------------

    def _context(
        self, row: Row[Any], attempt: int, session: Session | None
    ) -> RunContext:
        return RunContext(
            proposal_id=row.id,
            idempotency_key=run_key(row.id),
            attempt=attempt,
            actor=Actor(row.actor_id, ActorKind(row.actor_kind)),
            context=dict(row.context or {}),
            session=session,
        )

    def _call(self, loaded: LoadedTool, model: BaseModel, context: RunContext) -> Any:
        try:
            result = self.registry.run(loaded, model, context.actor, context)
        except PermanentToolError as exc:
            raise _Failure(_text(exc), retryable=False) from None
        except RetryableToolError as exc:
            raise _Failure(
                _text(exc), retryable=True, retry_after=exc.retry_after
            ) from None
        except SQLAlchemyError as exc:
            # The driver's message carries SQL and parameters; the log keeps
            # them, the reason names the kind of failure only.
            kind = type(getattr(exc, "orig", None) or exc).__name__
            raise _Failure(
                f"The tool's database write failed: {kind}", retryable=True, error=exc
            ) from None
        except Exception as exc:
            raise _Failure(
                f"The tool raised {type(exc).__name__}: {_text(exc)}",
                retryable=True,
                error=exc,
            ) from None
        try:
            canonical_json(result)
        except (TypeError, ValueError):
            raise _Failure(
                "The tool returned a result that is not JSON.", retryable=False
            ) from None
        return result

    def _run_transactional(
        self,
        connection: Connection,
        row: Row[Any],
        loaded: LoadedTool,
        model: BaseModel,
    ) -> tuple[Move, RunOutcome, _Failure | None]:
        attempt = row.attempts + 1
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            with span(
                "cairnloop.run", tool=row.tool, proposal_id=row.id, attempt=attempt
            ) as traced:
                result, failure = self._attempt_in_session(
                    session, loaded, model, self._context(row, attempt, session)
                )
                if failure is not None:
                    traced.fail(failure.reason)
        finally:
            session.close()
        if failure is not None:
            move, outcome = self._record_failure(row, loaded, attempt, failure)
        else:
            move, outcome = self._record_success(row, attempt, result)
        return move, outcome, failure

    def _attempt_in_session(
        self,
        session: Session,
        loaded: LoadedTool,
        model: BaseModel,
        context: RunContext,
    ) -> tuple[Any, _Failure | None]:
        try:
            result = self._call(loaded, model, context)
            session.commit()
        except _Failure as exc:
            session.rollback()
            return None, exc
        except Exception as exc:
            session.rollback()
            kind = type(getattr(exc, "orig", None) or exc).__name__
            return None, _Failure(
                f"The tool's database write failed: {kind}",
                retryable=True,
                error=exc,
            )
        return result, None

    def _take_lease(self, row: Row[Any], approved_hash: str | None) -> _Leased:
        """Re-check a proposal whose tool runs outside the transaction and, if
        it passes, lease it to this worker; the caller commits the move."""
        loaded = self.registry.get_tool(row.tool)
        try:
            model = recheck(row, loaded, self.registry, approved_hash=approved_hash)
        except RecheckFailed as exc:
            move, outcome = self._invalidate(row, str(exc))
            return _Leased(row, move, outcome=outcome)
        assert loaded is not None

        attempt = row.attempts + 1
        seconds = loaded.spec.timeout_seconds + self.settings.lease_margin_seconds
        recovered = row.status == S.RUNNING.value
        draft = EventDraft(
            "lease_recovered" if recovered else "started",
            SYSTEM,
            None,
            S.RUNNING,
            attempt=attempt,
            reason=f"the lease of {row.lease_owner} expired" if recovered else None,
            data={"worker": self.worker_id, "lease_seconds": seconds},
        )
        values = {
            "attempts": attempt,
            "lease_owner": self.worker_id,
            "lease_expires_at": utcnow() + _seconds(seconds),
        }
        return _Leased(
            row, Move(row, draft, values), loaded=loaded, model=model, attempt=attempt
        )

    def _start_leased(self, leased: _Leased) -> RunOutcome:
        """Report a committed lease and run its call; return the outcome."""
        row = leased.row
        if row.status == S.RUNNING.value:
            logger.warning(
                "Recovered proposal %s: the lease of %s expired; attempt %s runs "
                "with the same idempotency key",
                row.id,
                row.lease_owner,
                leased.attempt,
                extra={"event": "lease_recovered", "proposal_id": row.id},
            )
        record(
            "proposal_started",
            tool=row.tool,
            proposal_id=row.id,
            attempt=leased.attempt,
            worker=self.worker_id,
        )
        assert leased.loaded is not None and leased.model is not None
        return self._run_leased(row, leased.attempt, leased.loaded, leased.model)

    def _run_leased(
        self, row: Row[Any], attempt: int, loaded: LoadedTool, model: BaseModel
    ) -> RunOutcome:
        spec = loaded.spec
        context = self._context(row, attempt, None)
        with span(
            "cairnloop.run", tool=row.tool, proposal_id=row.id, attempt=attempt
        ) as traced:
            call = _Call(
                lambda: self._call(loaded, model, context),
                name=f"cairnloop-run-{row.id}-{attempt}",
            )
            call.start()
            ending = self._await(call, row.id, spec.timeout_seconds)
            failure = call.failure
            if ending == "timed_out":
                failure = _Failure(
                    f"The tool did not finish within {spec.timeout_seconds:g} seconds.",
                    retryable=True,
                )
            elif ending == "released":
                failure = _Failure(
                    "The worker stopped before the tool finished.",
                    retryable=True,
                    retry_after=0.0,
                )
            if failure is not None:
                traced.fail(failure.reason)

        with self.engine.begin() as connection:
            current = load_proposal(connection, row.id, for_update=True)
            if not (
                current.status == S.RUNNING.value
                and current.lease_owner == self.worker_id
                and current.attempts == attempt
            ):
                outcome = RunOutcome(
                    row.id, current.status, None, "lease_lost", row.tool, attempt
                )
            else:
                if failure is None:
                    move, outcome = self._record_success(current, attempt, call.result)
                else:
                    move, outcome = self._record_failure(
                        current,
                        loaded,
                        attempt,
                        failure,
                        retry_event="released" if ending == "released" else None,
                    )
                self._write(connection, [move])
                if outcome.status == S.APPROVED.value:
                    # Idle workers learn when the retry falls due.
                    _notify(connection)

        if outcome.event == "lease_lost":
            logger.warning(
                "Attempt %s at proposal %s ended after its lease was taken over; "
                "its outcome was not recorded",
                attempt,
                row.id,
                extra={"event": "lease_lost", "proposal_id": row.id},
            )
            return outcome
        if ending == "timed_out":
            logger.warning(
                "Attempt %s at proposal %s did not finish within %gs; its thread "
                "was abandoned",
                attempt,
                row.id,
                spec.timeout_seconds,
                extra={"event": "run_timed_out", "proposal_id": row.id},
            )
        self._report(outcome, failure)
        return outcome

    def _await(self, call: _Call, proposal_id: int, timeout: float) -> str:
        """Wait for a run; answer ``finished``, ``timed_out`` or ``released``."""
        deadline = time.monotonic() + timeout
        with self._calls_lock:
            self._calls.add(call)
        try:
            if self._stopping.is_set():
                call.wake.set()
            call.wake.wait(timeout)
            if call.finished.is_set():
                return "finished"
            if not self._stopping.is_set():
                return "timed_out"

            remaining = max(deadline - time.monotonic(), 0.0)
            grace = min(self.settings.stop_grace_seconds, remaining)
            logger.info(
                "Stopping: waiting up to %.1fs for the run of proposal %s",
                grace,
                proposal_id,
                extra={"event": "stop_waiting", "proposal_id": proposal_id},
            )
            if call.finished.wait(grace):
                return "finished"
            return "released" if time.monotonic() < deadline else "timed_out"
        finally:
            with self._calls_lock:
                self._calls.discard(call)

    # -- recording -----------------------------------------------------------------

    def _invalidate(self, row: Row[Any], reason: str) -> tuple[Move, RunOutcome]:
        if row.status == S.RUNNING.value:
            reason += (
                f" Attempt {row.attempts} may have reached the tool before its "
                "worker stopped."
            )
        reason = self._clip(reason)
        move = Move(
            row,
            EventDraft("invalidated", SYSTEM, None, S.INVALIDATED, reason=reason),
            {
                "reason": reason,
                "dedupe_key": None,
                "due_at": None,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )
        return move, RunOutcome(
            row.id, S.INVALIDATED.value, reason, "invalidated", row.tool, None
        )

    def _fail_abandoned(self, row: Row[Any]) -> tuple[Move, RunOutcome]:
        reason = (
            f"Attempt {row.attempts} of {row.max_attempts} never reported back: "
            f"its worker ({row.lease_owner}) stopped and the lease expired. "
            "No attempts are left; the outcome of that attempt is unknown."
        )
        move = Move(
            row,
            EventDraft(
                "failed", SYSTEM, None, S.FAILED, reason=reason, attempt=row.attempts
            ),
            {
                "reason": reason,
                "dedupe_key": None,
                "due_at": None,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )
        return move, RunOutcome(row.id, S.FAILED.value, reason, "failed", row.tool)

    def _record_success(
        self, row: Row[Any], attempt: int, result: Any
    ) -> tuple[Move, RunOutcome]:
        move = Move(
            row,
            EventDraft(
                "succeeded",
                SYSTEM,
                None,
                S.SUCCEEDED,
                attempt=attempt,
                data={"result": result},
            ),
            {
                "attempts": attempt,
                "result": result,
                "reason": None,
                "dedupe_key": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "due_at": None,
            },
        )
        return move, RunOutcome(
            row.id, S.SUCCEEDED.value, None, "succeeded", row.tool, attempt
        )

    def _record_failure(
        self,
        row: Row[Any],
        loaded: LoadedTool,
        attempt: int,
        failure: _Failure,
        *,
        retry_event: str | None = None,
    ) -> tuple[Move, RunOutcome]:
        reason = self._clip(failure.reason)
        common = {"attempts": attempt, "lease_owner": None, "lease_expires_at": None}
        if failure.retryable and attempt < row.max_attempts:
            if failure.retry_after is not None:
                delay = max(float(failure.retry_after), 0.0)
            else:
                delay = retry_delay(loaded.spec, attempt)
            due = utcnow() + _seconds(delay)
            event = retry_event or "attempt_failed"
            draft = EventDraft(
                event,
                SYSTEM,
                None,
                S.APPROVED,
                reason=reason,
                attempt=attempt,
                data={"retry_in_seconds": round(delay, 6), "retry_at": due.isoformat()},
            )
            values = {**common, "due_at": due, "reason": reason}
            status = S.APPROVED
        else:
            if failure.retryable and row.max_attempts == 1:
                reason = self._clip(f"Its only attempt failed: {reason}")
            elif failure.retryable:
                reason = self._clip(
                    f"All {row.max_attempts} attempts failed; the last: {reason}"
                )
            event = "failed"
            draft = EventDraft(
                event, SYSTEM, None, S.FAILED, reason=reason, attempt=attempt
            )
            values = {**common, "due_at": None, "reason": reason, "dedupe_key": None}
            status = S.FAILED
        return Move(row, draft, values), RunOutcome(
            row.id, status.value, reason, event, row.tool, attempt
        )

    def _clip(self, reason: str) -> str:
        limit = self.settings.max_reason_length
        return reason if len(reason) <= limit else reason[: limit - 1] + "…"

    def _report(self, outcome: RunOutcome, failure: _Failure | None) -> None:
        # Called only once the outcome's transaction has committed.
        if failure is not None and failure.error is not None:
            logger.warning(
                "Tool %r raised %s on attempt %s at proposal %s",
                outcome.tool,
                type(failure.error).__name__,
                outcome.attempt,
                outcome.proposal_id,
                exc_info=failure.error,
                extra={"event": "run_raised", "proposal_id": outcome.proposal_id},
            )
        record(
            f"proposal_{outcome.event}",
            tool=outcome.tool,
            proposal_id=outcome.proposal_id,
            attempt=outcome.attempt,
            reason=outcome.reason,
        )


def _notify(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _text(exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return message[:2000]
