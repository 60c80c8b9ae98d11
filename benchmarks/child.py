"""A worker process for the throughput measurements: a Cairnloop worker or a
Procrastinate worker that drains what is due once, after the parent's go.

Usage: ``python -m benchmarks.child cairnloop URL`` or
``python -m benchmarks.child procrastinate DSN CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

__all__ = ["main"]

PEER_TASK = "bench_noop"


def _ready() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("the parent went away before the go")


def _done(handled: int | None) -> None:
    print(json.dumps({"handled": handled, "finished": time.monotonic()}), flush=True)


def run_cairnloop(url: str) -> None:
    from benchmarks.workload import open_app
    from cairnloop_core.worker import Worker

    app = open_app(url, prepare=False)
    app.count_by_status()
    worker = Worker(app, concurrency=1)
    _ready()
    handled = worker.run(once=True)
    _done(handled)
    app.close()


def run_procrastinate(dsn: str, concurrency: int) -> None:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name=PEER_TASK)
    async def noop() -> None:
        return None

    async def work() -> None:
        async with app.open_async():
            await app.check_connection_async()
            await asyncio.to_thread(_ready)
            await app.run_worker_async(
                wait=False, concurrency=concurrency, install_signal_handlers=False
            )
            _done(None)

    asyncio.run(work())


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "cairnloop":
        run_cairnloop(argv[1])
    elif len(argv) == 3 and argv[0] == "procrastinate":
        run_procrastinate(argv[1], int(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
