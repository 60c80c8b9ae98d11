"""Commands that run Cairnloop: the schema, the worker, the audit check, the demo."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from typing import Any

import click

from cairnloop_core.cli.common import CONTEXT_SETTINGS, EXIT_REFUSED, State, echo_json
from cairnloop_core.settings import MAX_BATCH_SIZE, MAX_SECONDS

__all__ = ["audit", "db", "demo", "worker"]


@click.group(context_settings=CONTEXT_SETTINGS)
def db() -> None:
    """Manage Cairnloop's tables in the database."""


@db.command(context_settings=CONTEXT_SETTINGS)
@click.pass_obj
def upgrade(state: State) -> None:
    """Create or upgrade the schema."""
    from cairnloop_core.database import current_revision

    app = state.app(require_schema=False)
    app.upgrade()
    click.echo(f"Database schema is at revision {current_revision(app.engine)}.")


def _seconds(
    _ctx: click.Context, _param: click.Parameter, value: float | None
) -> float | None:
    # FloatRange lets NaN through: it compares false with every bound.
    if value is not None and math.isnan(value):
        raise click.BadParameter("nan is not a number of seconds")
    return value


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--once", is_flag=True, help="Drain what is due, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Proposals run at the same time by this process.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0, min_open=True, max=MAX_SECONDS),
    default=None,
    callback=_seconds,
    metavar="SECONDS",
    help="Longest idle sleep when no wake-up arrives (default 1).",
)
@click.option(
    "--lease-margin",
    type=click.FloatRange(min=0, max=MAX_SECONDS),
    default=None,
    callback=_seconds,
    metavar="SECONDS",
    help="Added to a tool's timeout to form its lease (default 30).",
)
@click.option(
    "--stop-grace",
    type=click.FloatRange(min=0, max=MAX_SECONDS),
    default=None,
    callback=_seconds,
    metavar="SECONDS",
    help="On SIGTERM, how long a running call may still finish (default 10).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    default=None,
    metavar="N",
    help="Due proposals claimed, run and committed in one transaction (default 32).",
)
@click.pass_obj
def worker(
    state: State,
    once: bool,
    concurrency: int,
    poll_seconds: float | None,
    lease_margin: float | None,
    stop_grace: float | None,
    batch_size: int | None,
) -> None:
    """Run the executor: claim approved proposals, re-check and run them.

    SIGTERM or Ctrl-C stops it cleanly: each loop finishes its current
    proposal (a call still running after the grace is released for a retry)
    and the command exits 0. A second signal interrupts at once.
    """
    from cairnloop_core.worker import Worker

    app = state.app()
    overrides: dict[str, Any] = {
        "poll_seconds": poll_seconds,
        "lease_margin_seconds": lease_margin,
        "stop_grace_seconds": stop_grace,
        "batch_size": batch_size,
    }
    settings = replace(
        app.settings, **{k: v for k, v in overrides.items() if v is not None}
    )
    runner = Worker(app, concurrency=concurrency, settings=settings)
    runner.stop_on_signals()
    handled = runner.run(once=once)
    if once:
        click.echo(f"Handled {handled} proposal(s).")
    else:
        click.echo(f"Stopped after handling {handled} proposal(s).")


@click.group(context_settings=CONTEXT_SETTINGS)
def audit() -> None:
    """Check the audit trail."""


@audit.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def verify(state: State, as_json: bool) -> None:
    """Recompute every event hash chain and report tampering."""
    checked, problems = state.app().verify_audit()
    if as_json:
        echo_json(
            {
                "events_checked": checked,
                "ok": not problems,
                "problems": [
                    {"proposal_id": p.proposal_id, "seq": p.seq, "problem": p.problem}
                    for p in problems
                ],
            }
        )
    elif problems:
        for problem in problems:
            click.echo(f"TAMPERED: {problem}")
    else:
        click.echo(f"Audit trail intact: {checked} event(s) verified.")
    if problems:
        click.echo(
            f"Audit trail broken: {len(problems)} problem(s) in {checked} "
            "event(s); each is listed on stdout.",
            err=True,
        )
        sys.exit(EXIT_REFUSED)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--database-file",
    default="cairnloop-demo.db",
    show_default=True,
    help="SQLite file for the demo; it is created afresh.",
)
def demo(database_file: str) -> None:
    """Run a complete governed scenario on a fresh SQLite file."""
    from cairnloop_core.demo import run_demo

    run_demo(database_file, click.echo)
