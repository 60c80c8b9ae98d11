"""The benchmark command: run the measurements, write the results as JSON and
regenerate docs/benchmarks.md from them.

Usage: ``python -m benchmarks.run [--quick] [--only NAME]... [--output PATH]``.
A full run (no ``--quick``, no ``--only``) writes
``benchmarks/results/latest.json`` and ``docs/benchmarks.md``; a partial run
prints its tables and writes JSON only where ``--output`` says.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    cold_start,
    drain,
    latency,
    peer,
    propose,
    raw_limit,
    report,
    transactions,
)
from benchmarks.machine import describe_machine, load_average
from benchmarks.places import BenchError, CheckFailed, Places, Postgres
from benchmarks.sizes import FULL, QUICK, Sizes

__all__ = ["MEASUREMENTS", "main"]

logger = logging.getLogger(__name__)

Measurement = Callable[[Places, Sizes], dict[str, Any]]

# Run order: the transaction count first, while the database is quiet.
MEASUREMENTS: dict[str, Measurement] = {
    "transactions": transactions.measure,
    "raw_limit": raw_limit.measure,
    "propose": propose.measure,
    "drain": drain.measure,
    "peer": peer.measure,
    "latency": latency.measure,
    "cold_start": cold_start.measure,
}
NEEDS_POSTGRES = {"transactions", "raw_limit", "propose", "drain", "peer", "latency"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Measure Cairnloop against its databases' limits and a peer.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, for development"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(MEASUREMENTS),
        metavar="NAME",
        help=f"run only this measurement (repeatable): {', '.join(MEASUREMENTS)}",
    )
    parser.add_argument(
        "--output", type=Path, help="where to write the JSON results of this run"
    )
    return parser.parse_args(argv)


def run(selected: list[str], sizes: Sizes, mode: str) -> dict[str, Any]:
    """Run ``selected`` measurements and return the results document."""
    postgres = Postgres() if NEEDS_POSTGRES & set(selected) else None
    if postgres is not None:
        postgres.ensure_database()
        postgres.drop_leftover_schemas()
    places = Places(postgres)
    started = time.monotonic()
    document: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run",
        "mode": mode,
        "measurements": selected,
        "machine": describe_machine(postgres),
        "sizes": sizes.as_dict(),
        "results": {},
    }
    try:
        for name in selected:
            logger.info("Measuring %s", name, extra={"event": "bench_started"})
            document["results"][name] = MEASUREMENTS[name](places, sizes)
    finally:
        places.cleanup()
        if postgres is not None:
            postgres.drop_leftover_schemas()
            postgres.close()
    document["machine"]["load_average_at_end"] = load_average()
    document["duration_seconds"] = round(time.monotonic() - started, 1)
    return report.complete(document)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("cairnloop_core").setLevel(logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)

    selected = arguments.only or list(MEASUREMENTS)
    selected = [name for name in MEASUREMENTS if name in selected]
    full = not arguments.quick and arguments.only is None
    sizes = QUICK if arguments.quick else FULL
    try:
        document = run(selected, sizes, "quick" if arguments.quick else "full")
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"Error: a check failed, so nothing was written: {exc}", file=sys.stderr)
        return 1

    output = arguments.output or (report.LATEST if full else None)
    if output is not None:
        report.write_json(document, output)
        print(f"Wrote {output}", file=sys.stderr)
    if full:
        report.write_docs(document)
        print(f"Wrote {report.DOCS}", file=sys.stderr)
    else:
        print(report.render_tables(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
