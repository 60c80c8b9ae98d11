"""Running the executor: loops on threads, wake-ups, the expiry sweep, and
clean stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from cairnloop_core.errors import CairnloopError, InvalidArgument
from cairnloop_core.executor import Executor, due_moments, earliest
from cairnloop_core.governance import NOTIFY_CHANNEL
from cairnloop_core.proposals import ProposalStatus
from cairnloop_core.schema import proposals, utcnow
from cairnloop_core.settings import Settings

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

S = ProposalStatus
SWEEP_INTERVAL_SECONDS = 1.0
MAX_ERROR_PAUSE_SECONDS = 5.0
LISTEN_CHECK_SECONDS = 0.5
MAX_CONCURRENCY = 64


class Worker:
    """Executor loops on threads that share one wake-up signal.

    An idle loop sleeps until the next retry, lease expiry or TTL falls due,
    or at most ``poll_seconds``; it wakes at once on a PostgreSQL
    ``NOTIFY`` and, on any database, when the facade it was made from
    approves something. A worker runs once: after it stops, make a new one.
    """

    def __init__(
        self,
        app: Cairnloop,
        *,
        concurrency: int = 1,
        settings: Settings | None = None,
    ) -> None:
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not (1 <= concurrency <= MAX_CONCURRENCY)
        ):
            raise InvalidArgument(
                "concurrency", f"must be a whole number from 1 to {MAX_CONCURRENCY}"
            )
        if settings is not None and not isinstance(settings, Settings):
            raise InvalidArgument("settings", "must be a cairnloop_core.Settings")
        self.app = app
        self.concurrency = concurrency
        self.settings = settings or app.settings
        self.executor = Executor(app.engine, app.registry, self.settings)
        self._stop = threading.Event()
        # A wake-up leaves a token and rouses one idle loop; a token left
        # while every loop was busy is taken by the next loop to go idle, so
        # no wake-up is lost between looking for work and sleeping.
        self._wake = threading.Condition()
        self._tokens = 0
        self._listening = threading.Event()
        self._done = threading.Event()
        self._claimed = False
        self._claim_lock = threading.Lock()
        self._next_sweep = 0.0
        self._swept_until = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._sweep_lock = threading.Lock()
        self._handled = 0
        self._count_lock = threading.Lock()
        self._errors: list[BaseException] = []

    # -- state ------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        """The id this worker writes into the leases it takes."""
        return self.executor.worker_id

    @property
    def handled(self) -> int:
        """How many proposals this worker has taken to a new state."""
        with self._count_lock:
            return self._handled

    @property
    def running(self) -> bool:
        """True from ``start``/``run`` until every loop has ended."""
        return self._claimed and not self._done.is_set()

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self._stop.is_set()

    @property
    def listening(self) -> bool:
        """True while PostgreSQL notifications reach this worker."""
        return self._listening.is_set()

    # -- running ----------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Run in the calling thread (plus ``concurrency - 1`` helpers).

        Without ``once`` it runs until ``request_stop`` or ``stop``; with
        ``once`` it drains what is due and returns. Returns how many
        proposals it took to a new state.
        """
        self._claim_run()
        return self._run(once)

    def _run(self, once: bool) -> int:
        self.app.governance.add_wake_callback(self.wake)
        listener = None
        if not once and self.app.engine.dialect.name == "postgresql":
            listener = threading.Thread(
                target=self._listen, name="cairnloop-listen", daemon=True
            )
            listener.start()
        logger.info(
            "Worker %s started with %d loop(s)",
            self.worker_id,
            self.concurrency,
            extra={"event": "worker_started", "worker": self.worker_id},
        )

        helpers = [
            threading.Thread(
                target=self._helper,
                args=(once,),
                name=f"cairnloop-loop-{n}",
                daemon=True,
            )
            for n in range(1, self.concurrency)
        ]
        try:
            for helper in helpers:
                helper.start()
            self._loop(once)
        except BaseException:
            self.request_stop()
            raise
        finally:
            for helper in helpers:
                if helper.ident is not None:
                    helper.join()
            self.app.governance.remove_wake_callback(self.wake)
            self._stop.set()
            if listener is not None:
                listener.join(timeout=5 * LISTEN_CHECK_SECONDS)
            self._done.set()

        if self._errors:
            raise self._errors[0]
        logger.info(
            "Worker %s stopped after %d proposal(s)",
            self.worker_id,
            self.handled,
            extra={"event": "worker_stopped", "worker": self.worker_id},
        )
        return self.handled

    def start(self) -> Worker:
        """Run in a background thread inside the host; returns at once."""
        self._claim_run()
        thread = threading.Thread(
            target=self._run_in_background, name="cairnloop-worker", daemon=True
        )
        thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop after the current proposals and wait; True once stopped.

        Each loop finishes its current proposal; a non-transactional run
        still going after ``stop_grace_seconds`` is released for a retry.
        """
        self.request_stop()
        if not self._claimed:
            return True
        return self._done.wait(timeout)

    async def serve(self) -> int:
        """Run until stopped or cancelled, for hosts built on asyncio.

        Cancelling the task stops the worker cleanly (as ``stop`` does)
        before the cancellation goes on. Returns how many proposals the
        worker took to a new state when it is stopped by other means.
        """
        self._claim_run()
        task = asyncio.ensure_future(asyncio.to_thread(self._run, False))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.request_stop()
            await asyncio.wait([task])
            raise

    def request_stop(self) -> None:
        """Ask every loop to stop after its current proposal; returns at once."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self.executor.request_stop()

    def wake(self) -> None:
        """Make one idle loop look for work now."""
        with self._wake:
            self._tokens = min(self._tokens + 1, self.concurrency)
            self._wake.notify()

    def stop_on_signals(
        self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Stop cleanly on the first of ``signals``; a second interrupts at once.

        Call it from the main thread before ``run``. The handler only writes
        to a pipe; a relay thread does the stopping, so no lock is ever taken
        inside a signal handler.
        """
        read_end, write_end = os.pipe()
        received = 0

        def handler(signum: int, _frame: object) -> None:
            nonlocal received
            received += 1
            if received > 1:
                raise KeyboardInterrupt
            os.write(write_end, b"\0")

        def relay() -> None:
            if os.read(read_end, 1):
                logger.info(
                    "Stop requested; finishing the current proposals",
                    extra={"event": "worker_stopping", "worker": self.worker_id},
                )
                self.request_stop()

        threading.Thread(target=relay, name="cairnloop-signals", daemon=True).start()
        for chosen in signals:
            signal.signal(chosen, handler)

    def _claim_run(self) -> None:
        with self._claim_lock:
            if self._claimed:
                raise CairnloopError(
                    "This worker has already run; create a new one with "
                    "app.worker() to run again."
                )
            self._claimed = True

    def _run_in_background(self) -> None:
        try:
            self._run(False)
        except Exception:
            logger.exception(
                "Worker %s stopped on an error",
                self.worker_id,
                extra={"event": "worker_failed", "worker": self.worker_id},
            )

    # -- the loop -------------------------------------------------------------------

    def _helper(self, once: bool) -> None:
        try:
            self._loop(once)
        except BaseException as exc:
            self._errors.append(exc)
            self.request_stop()

    def _loop(self, once: bool) -> None:
        force_sweep = True
        while not self._stop.is_set():
            self._sweep(force=force_sweep)
            checked_at = utcnow()
            try:
                outcomes = self.executor.run_batch(self.settings.batch_size)
            except Exception:
                if once:
                    raise
                pause = min(self.settings.poll_seconds, MAX_ERROR_PAUSE_SECONDS)
                logger.exception(
                    "Executor step failed; trying again in %.1fs",
                    pause,
                    extra={"event": "executor_step_failed", "worker": self.worker_id},
                )
                self._stop.wait(pause)
                continue
            if outcomes:
                handled = sum(1 for o in outcomes if o.event != "lease_lost")
                with self._count_lock:
                    self._handled += handled
                force_sweep = False
                continue
            if once:
                return
            force_sweep = not self._idle(checked_at)

    def _idle(self, checked_at: dt.datetime) -> bool:
        """Sleep until woken or something falls due; True if woken.

        ``checked_at`` is when the loop last looked for due work: a retry or
        lease expiry that fell due since then wakes the loop at once.
        """
        timeout = self.settings.poll_seconds
        try:
            upcoming = self._next_moment(checked_at)
        except Exception:
            logger.debug(
                "Could not read when work falls due; polling",
                exc_info=True,
                extra={"event": "next_due_failed"},
            )
            upcoming = None
        if upcoming is not None:
            timeout = min(timeout, max((upcoming - utcnow()).total_seconds(), 0.0))
        with self._wake:
            self._wake.wait_for(
                lambda: self._tokens > 0 or self._stop.is_set(), timeout
            )
            if self._tokens == 0:
                return self._stop.is_set()
            self._tokens -= 1
            return True

    def _next_moment(self, checked_at: dt.datetime) -> dt.datetime | None:
        # Expiry moments count from the last sweep, not from now: one that
        # fell due since then is in the past and wakes the loop at once.
        since = self._swept_until
        expiry = (
            select(func.min(proposals.c.expires_at))
            .where(
                proposals.c.status.in_([S.PENDING.value, S.DEFERRED.value]),
                proposals.c.expires_at > since,
            )
            .scalar_subquery()
        )
        deferral = (
            select(func.min(proposals.c.defer_until))
            .where(
                proposals.c.status == S.DEFERRED.value,
                proposals.c.defer_until > since,
            )
            .scalar_subquery()
        )
        with self.app.engine.connect() as connection:
            moment = earliest(connection, [*due_moments(checked_at), expiry, deferral])
            connection.rollback()
        return moment

    def _sweep(self, *, force: bool) -> None:
        started = time.monotonic()
        with self._sweep_lock:
            if not force and started < self._next_sweep:
                return
            self._next_sweep = started + SWEEP_INTERVAL_SECONDS
        now = utcnow()
        try:
            self.app.governance.expire_due(now)
        except Exception:
            logger.exception(
                "Expiry sweep failed; it runs again on the next pass",
                extra={"event": "expiry_sweep_failed"},
            )
        # Also after a failure, so that a sweep that keeps failing waits for
        # the next poll instead of spinning.
        with self._sweep_lock:
            self._swept_until = max(self._swept_until, now)

    # -- PostgreSQL notifications ---------------------------------------------------

    def _listen(self) -> None:
        import psycopg

        url = self.app.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    dsn,
                    autocommit=True,
                    connect_timeout=10,
                    application_name=f"cairnloop-listen {self.worker_id}"[:63],
                ) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._listening.set()
                    logger.info(
                        "Listening for notifications on channel %s",
                        NOTIFY_CHANNEL,
                        extra={"event": "worker_listening", "worker": self.worker_id},
                    )
                    # Whatever was approved before LISTEN took effect sent
                    # its notification to nobody; look once more.
                    self.wake()
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=LISTEN_CHECK_SECONDS):
                            self.wake()
            except psycopg.Error as exc:
                self._listening.clear()
                logger.warning(
                    "Lost the notification connection (%s); polling until it is back",
                    type(exc).__name__,
                    extra={"event": "listen_failed", "worker": self.worker_id},
                )
                self._stop.wait(
                    min(self.settings.poll_seconds, MAX_ERROR_PAUSE_SECONDS)
                )
        self._listening.clear()
