"""Worker processes killed with SIGKILL at random moments and restarted still
write every approved note exactly once, and leave nothing stuck."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from executor_support import (
    OPERATOR,
    Apps,
    WorkerProcess,
    cli_env,
    note_rows,
    wait_for,
)
from sqlalchemy import func, select

from cairnloop_core import Cairnloop, Registry
from cairnloop_core.executor import run_key
from cairnloop_core.schema import events, proposals

pytestmark = pytest.mark.slow

PROCESSES = 3
CONCURRENCY = "2"
DEADLINE_SECONDS = 100


class Feeder(threading.Thread):
    """Proposes and approves the notes while the workers run and die, with at
    most ``window`` approved notes waiting, so the drain lasts as long as the
    workers need rather than as long as the feeding."""

    def __init__(self, app: Cairnloop, count: int, window: int) -> None:
        super().__init__(name="feeder")
        self.app = app
        self.count = count
        self.window = window
        self.ids: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n in range(self.count):
                wait_for(
                    lambda n=n: n - succeeded(self.app) < self.window,
                    timeout=DEADLINE_SECONDS,
                    what="the workers to catch up",
                    interval=0.01,
                )
                result = self.app.propose(
                    "internal_note",
                    actor="support-bot",
                    input={"conversation_id": "crash-test", "content": f"note {n}"},
                )
                assert result.proposal is not None
                self.app.approve(result.proposal.id, actor=OPERATOR)
                self.ids.append(result.proposal.id)
        except BaseException as exc:
            self.error = exc


def succeeded(app: Cairnloop) -> int:
    with app.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).where(proposals.c.status == "succeeded")
        ).scalar_one()
        connection.rollback()
    return int(count)


def drain_while_killing(
    feeder: Feeder, database_url: str, tmp_path: Path, steps: tuple[int, int]
) -> int:
    """Start the workers, then the feeder; whenever a random number of further
    notes is written, SIGKILL a busy worker and restart it. Return how many
    were killed."""
    app, total = feeder.app, feeder.count
    seed = int(os.environ.get("CAIRNLOOP_CRASH_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    env = cli_env(database_url)
    launched = 0

    def launch() -> WorkerProcess:
        nonlocal launched
        launched += 1
        return WorkerProcess(
            tmp_path / f"worker-{launched}.log",
            env,
            "--concurrency",
            CONCURRENCY,
            "--poll-seconds",
            "0.5",
        )

    workers = [launch() for _ in range(PROCESSES)]
    kills = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        for worker in workers:
            worker.wait_for_log("started with")
        feeder.start()
        while (done := succeeded(app)) < total:
            assert time.monotonic() < deadline, f"not drained in time (seed {seed})"
            target = min(done + rng.randint(*steps), total)
            wait_for(
                lambda t=target: succeeded(app) >= t,
                timeout=DEADLINE_SECONDS,
                what=f"{target} notes (seed {seed})",
                interval=0.01,
            )
            busy = [w for w in workers if "proposal_succeeded" in w.stderr()]
            if succeeded(app) >= total or not busy:
                continue
            victim = rng.choice(busy)
            victim.process.send_signal(signal.SIGKILL)
            assert victim.wait() == -signal.SIGKILL
            kills += 1
            workers[workers.index(victim)] = launch()

        for worker in workers:
            # A worker restarted a moment ago may not handle SIGTERM yet.
            worker.wait_for_log("started with")
            worker.process.send_signal(signal.SIGTERM)
        assert [w.wait() for w in workers] == [0] * PROCESSES
    finally:
        for worker in workers:
            worker.kill()
    return kills


def assert_each_note_written_once(app: Cairnloop, ids: list[int]) -> None:
    assert app.count_by_status() == {"succeeded": len(ids)}

    rows = note_rows(app)
    assert len(rows) == len(ids)
    assert sorted(r["run_key"] for r in rows) == sorted(run_key(i) for i in ids)

    trails: dict[int, list[str]] = defaultdict(list)
    with app.engine.connect() as connection:
        for proposal_id, kind in connection.execute(
            select(events.c.proposal_id, events.c.type).order_by(
                events.c.proposal_id, events.c.seq
            )
        ):
            trails[proposal_id].append(kind)
        connection.rollback()
    odd = {
        pid: trail
        for pid, trail in trails.items()
        if trail != ["proposed", "approved", "succeeded"]
    }
    assert odd == {}

    checked, problems = app.verify_audit()
    assert (checked, problems) == (3 * len(ids), [])


def crash_run(
    database_url: str,
    registry: Registry,
    tmp_path: Path,
    count: int,
    steps: tuple[int, int],
    window: int,
) -> tuple[int, Cairnloop, list[int], Apps]:
    apps = Apps(database_url)
    app = apps.open(registry)
    app.create_conversation("crash-test")
    feeder = Feeder(app, count, window)
    try:
        kills = drain_while_killing(feeder, database_url, tmp_path, steps)
    finally:
        if feeder.ident is not None:
            feeder.join()
    assert feeder.error is None, feeder.error
    return kills, app, feeder.ids, apps


def test_three_postgres_workers_killed_at_random_write_each_of_500_notes_once(
    postgres_url: str, registry: Registry, tmp_path: Path
) -> None:
    kills, app, ids, apps = crash_run(
        postgres_url, registry, tmp_path, 500, steps=(30, 80), window=60
    )
    try:
        assert kills >= 5
        assert_each_note_written_once(app, ids)
    finally:
        apps.close()


def test_three_sqlite_workers_killed_at_random_write_each_note_once(
    sqlite_url: str, registry: Registry, tmp_path: Path
) -> None:
    kills, app, ids, apps = crash_run(
        sqlite_url, registry, tmp_path, 150, steps=(5, 15), window=10
    )
    try:
        assert kills >= 3
        assert_each_note_written_once(app, ids)
    finally:
        apps.close()
