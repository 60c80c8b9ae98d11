"""Running the executor: a loop per thread, wake-ups, the expiry sweep, and
clean stops."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

from cairnloop_core.executor import Executor
from cairnloop_core.governance import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 1.0


class Worker:
    """One or more executor loops sharing a wake-up signal.

    Woken at once by ``NOTIFY`` on PostgreSQL and by the facade in this
    process on any database; polls every ``poll_seconds`` as a fallback.
    """

    def __init__(self, app: Cairnloop, *, concurrency: int = 1) -> None:
        from cairnloop_core.errors import InvalidArgument

        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not (1 <= concurrency <= 64)
        ):
            raise InvalidArgument("concurrency", "must be a whole number from 1 to 64")
        self.app = app
        self.concurrency = concurrency
        self.executor = Executor(app.engine, app.registry, app.settings)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_sweep = 0.0
        self._sweep_lock = threading.Lock()
        self.handled = 0
        self._count_lock = threading.Lock()

    # -- running ----------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Run in the calling thread (plus helpers) until stopped.

        With ``once`` the worker drains what is due and returns. Returns how
        many proposals it took to a new state.
        """
        self.app.governance.add_wake_callback(self._wake.set)
        listener = None
        if not once and self.app.engine.dialect.name == "postgresql":
            listener = threading.Thread(
                target=self._listen, name="cairnloop-listen", daemon=True
            )
            listener.start()
        logger.info(
            "Worker %s started with %d loop(s)",
            self.executor.worker_id,
            self.concurrency,
            extra={"event": "worker_started", "worker": self.executor.worker_id},
        )
        helpers = [
            threading.Thread(target=self._loop, args=(once,), daemon=True)
            for _ in range(self.concurrency - 1)
        ]
        for helper in helpers:
            helper.start()
        try:
            self._loop(once)
        finally:
            for helper in helpers:
                helper.join()
            self.app.governance.remove_wake_callback(self._wake.set)
            self._stop.set()
            if listener is not None:
                listener.join(timeout=5)
            self.executor.close()
        logger.info(
            "Worker %s stopped after %d proposal(s)",
            self.executor.worker_id,
            self.handled,
            extra={"event": "worker_stopped", "worker": self.executor.worker_id},
        )
        return self.handled

    def start(self) -> Worker:
        """Run in a background thread inside the host; returns at once."""
        thread = threading.Thread(target=self.run, name="cairnloop-worker", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask every loop to stop after its current proposal, and wait."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    async def serve(self) -> None:
        """Run until cancelled, for hosts built on asyncio."""
        task = asyncio.to_thread(self.run)
        try:
            await task
        except asyncio.CancelledError:
            self.stop()
            raise

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop after the current proposal; safe to call from a signal handler."""
        self._stop.set()
        self._wake.set()

    # -- the loop -------------------------------------------------------------------

    def _loop(self, once: bool) -> None:
        while not self._stop.is_set():
            self._sweep(force=once)
            try:
                outcome = self.executor.run_once()
            except Exception:
                logger.exception(
                    "Executor step failed; retrying after a pause",
                    extra={"event": "executor_step_failed"},
                )
                if once:
                    raise
                self._stop.wait(self.app.settings.poll_seconds)
                continue
            if outcome is not None:
                with self._count_lock:
                    self.handled += 1
                continue
            if once:
                return
            self._wake.wait(self.app.settings.poll_seconds)
            self._wake.clear()

    def _sweep(self, *, force: bool) -> None:
        now = time.monotonic()
        with self._sweep_lock:
            if not force and now - self._last_sweep < SWEEP_INTERVAL_SECONDS:
                return
            self._last_sweep = now
        try:
            self.app.governance.expire_due()
        except Exception:
            logger.exception(
                "Expiry sweep failed", extra={"event": "expiry_sweep_failed"}
            )

    def _listen(self) -> None:
        import psycopg

        url = self.app.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=0.5, stop_after=1):
                            self._wake.set()
            except psycopg.Error as exc:
                logger.warning(
                    "Lost the notification connection (%s); polling until it is back",
                    type(exc).__name__,
                    extra={"event": "listen_failed"},
                )
                self._stop.wait(self.app.settings.poll_seconds)
