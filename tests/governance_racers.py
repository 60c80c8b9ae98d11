"""Separate processes that race on one proposal, started with 'spawn'.

Each racer opens its own Cairnloop on the URL it is sent, connects, waits on
a shared barrier so that all of them act at the same moment, acts once and
reports what it saw. The module is imported by each spawned child, so it
holds only what a child needs.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

RACERS = 8
DEADLINE_SECONDS = 120


def _act(app: Any, index: int, kind: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    from cairnloop_core import Actor, DecisionRefused

    if kind == "decide":
        operator = f"operator-{index}"
        try:
            if index % 2 == 0:
                proposal = app.approve(payload["proposal_id"], actor=operator)
            else:
                proposal = app.reject(
                    payload["proposal_id"], actor=operator, reason="racing"
                )
        except DecisionRefused as exc:
            return ("refused", str(exc))
        return ("decided", proposal.status.value)

    result = app.propose(
        "internal_note",
        actor=Actor(payload["actor"], "agent"),
        input=payload["input"],
        idempotency_key=payload.get("key"),
    )
    return (result.outcome.value, result.proposal.id)


def racer(index: int, barrier: Any, tasks: Any, results: Any) -> None:
    """Run tasks until told to stop; each task is one synchronised action."""
    # Import every driver up front so the barrier, not import time, decides
    # when the racers act.
    import sqlalchemy.dialects.postgresql.psycopg
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401

    from cairnloop_core import Cairnloop, Registry

    registry = Registry.discover(allow=None, block=())
    while True:
        task = tasks.get()
        if task is None:
            return
        kind, url, payload = task
        try:
            with Cairnloop(url, registry=registry) as app:
                with app.engine.connect() as connection:
                    connection.execute(text("select 1"))
                barrier.wait(timeout=DEADLINE_SECONDS)
                outcome = _act(app, index, kind, payload)
        except Exception as exc:
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        results.put((index, outcome))


class Racers:
    """Eight spawned processes that each act once per ``race`` call."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.barrier = context.Barrier(RACERS)
        self.results = context.Queue()
        self.tasks = [context.Queue() for _ in range(RACERS)]
        self.processes = [
            context.Process(
                target=racer,
                args=(index, self.barrier, self.tasks[index], self.results),
                daemon=True,
            )
            for index in range(RACERS)
        ]
        for process in self.processes:
            process.start()

    def race(self, kind: str, url: str, payload: dict[str, Any]) -> list[Any]:
        """Have every racer act once, together; their outcomes by index."""
        for tasks in self.tasks:
            tasks.put((kind, url, payload))
        outcomes: dict[int, Any] = {}
        while len(outcomes) < RACERS:
            try:
                index, outcome = self.results.get(timeout=DEADLINE_SECONDS)
            except queue.Empty:
                raise AssertionError(
                    f"only {len(outcomes)} of {RACERS} racers answered"
                ) from None
            outcomes[index] = outcome
        return [outcomes[index] for index in range(RACERS)]

    def stop(self) -> None:
        for tasks in self.tasks:
            tasks.put(None)
        for process in self.processes:
            process.join(timeout=DEADLINE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()


@contextmanager
def racers() -> Iterator[Racers]:
    group = Racers()
    try:
        yield group
    finally:
        group.stop()
