"""The prose of docs/benchmarks.md: how to run, what each figure means, and why
a target is missed, worded from the figures of the run being rendered."""

from __future__ import annotations

from typing import Any

__all__ = ["explanations", "introduction", "method"]


def _get(document: dict[str, Any], *path: str) -> Any:
    value: Any = document["results"]
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def introduction(document: dict[str, Any]) -> str:
    machine = document["machine"]
    load = machine.get("load_average_at_start") or [0.0]
    cores = machine.get("cores") or 1
    busy = (
        f"\n\n**This run was made on a busy machine** (load average {load[0]} on "
        f"{cores} cores when it started): every figure below is lower than a quiet "
        "machine gives, and latencies are longer. Run `make bench` again on a "
        "quiet machine to replace them."
        if load[0] >= cores * 0.5
        else ""
    )
    return f"""# Benchmarks

What Cairnloop costs, measured side by side with the database's own limit and
with Procrastinate, the PostgreSQL job queue a user might pick instead. Every
figure on this page comes from one run of one command:

```console
make bench                        # runs: .venv/bin/python -m benchmarks.run
make bench BENCH_ARGS=--quick     # small counts, tables on stdout only
```

The command writes `benchmarks/results/latest.json` and renders this page from
it, so the page and the results never disagree; do not edit the page by hand
(`.venv/bin/python -m benchmarks.report` renders it again from the JSON).
This run: {document["generated_at"]}, {document["mode"]} sizes, \
{document.get("duration_seconds", "?")} s.{busy}

Options: `--quick` uses small counts for development and only prints its
tables; `--only NAME` (repeatable) runs some measurements (`transactions`,
`raw_limit`, `propose`, `drain`, `peer`, `latency`, `cold_start`); `--output
PATH` writes the JSON of a partial run. Neither writes `latest.json` or this
page. The benchmarks are not part of the test suite (`pytest` collects only
`tests/` and `plugins/internal_note/tests`).

The command needs PostgreSQL 15 or newer at `CAIRNLOOP_BENCH_POSTGRES_URL`
(default `postgresql+psycopg://127.0.0.1:5432/cairnloop_bench`) and the
`bench` extra (`.venv/bin/pip install -e ".[dev,bench]"`, which `make bench`
does). It creates that database if it is missing, works in one fresh
`bench_*` schema per measurement and drops it afterwards, gives Procrastinate
a database of its own (`cairnloop_bench_procrastinate`, dropped at the end),
and keeps its SQLite files in a temporary folder it removes. It touches no
other database."""


def explanations(document: dict[str, Any]) -> str:
    """Why each missed target is missed, with the part of the core that causes it."""
    missed = {t["id"] for t in document.get("targets", []) if t["status"] == "not met"}
    parts = []
    if "transactions" in missed:
        parts.append(_transactions_note(document))
    if "peer" in missed:
        parts.append(_peer_note(document))
    if "latency" in missed:
        parts.append(_latency_note(document))
    if "cold_start" in missed:
        parts.append(
            "`cairnloop tools` slows down by more than half its own start when 50 "
            "plugins are installed: discovery imports and validates each plugin "
            "(`Registry.discover` in `cairnloop_core/registry.py`) before listing."
        )
    notes = [note for note in parts if note]
    for extra in (_worker_loop_note(document), _sqlite_processes_note(document)):
        if extra:
            notes.append(extra)
    if not notes:
        return ""
    return "## Why targets are missed, and what else the figures show\n\n" + (
        "\n\n".join(notes)
    )


def _transactions_note(document: dict[str, Any]) -> str:
    stages = _get(document, "transactions", "postgresql", "stages") or _get(
        document, "transactions", "sqlite", "stages"
    )
    if not stages:
        return ""
    propose = stages["propose"]["per_action"]
    if propose < 2:
        return ""
    return f"""**Transactions.** Proposing takes {_fmt(propose)} transactions where one
would do. `Governance._persist` (`cairnloop_core/governance.py`) first calls
`_find_duplicate`, which looks for an earlier proposal with the same idempotency
or dedupe key in a read transaction of its own (`engine.connect()`, `SELECT`,
`rollback()`), and only then inserts the proposal and its first events in a
second transaction. On SQLite that read also takes the write lock, because
`prepare_engine` (`cairnloop_core/database.py`) starts every transaction with
`BEGIN IMMEDIATE`. Deciding ({_fmt(stages["decide"]["per_action"])}) and \
executing ({_fmt(stages["execute"]["per_action"])}) are already one
transaction each. The unique indexes on `idempotency_key` and `dedupe_key`
already settle races (the insert's `IntegrityError` is answered with the
existing row), so doing the duplicate read inside the insert transaction would
bring propose to one transaction and an approval-required action to three."""


def _worker_loop_note(document: dict[str, Any]) -> str:
    counts = _get(document, "transactions", "postgresql") or _get(
        document, "transactions", "sqlite"
    )
    if not counts:
        return ""
    looped = counts["stages"]["worker_once_loop"]["per_action"]
    executed = counts["stages"]["execute"]["per_action"]
    if looped <= executed:
        return ""
    return f"""**The worker loop.** Through `cairnloop worker --once` an executed
proposal costs {_fmt(looped)} transactions instead of {_fmt(executed)}: with
`once` set, `Worker._loop` (`cairnloop_core/worker.py`) forces the expiry sweep
(`Governance.expire_due`, one read transaction) before every claim, and the
drain ends with one more sweep and one claim that finds nothing (here over
{counts["actions"]} proposals). An embedded worker sweeps at most once a second,
but after each run it makes one more claim that finds nothing before it waits."""


def _sqlite_processes_note(document: dict[str, Any]) -> str:
    runs = _get(document, "drain", "sqlite", "runs") or []
    rates = {run["processes"]: run["per_second"] for run in runs}
    if not (1 in rates and 4 in rates and rates[4] < rates[1]):
        return ""
    return f"""**Several worker processes on SQLite.** Four processes drained
{_fmt(rates[4])} proposals/s against {_fmt(rates[1])} for one. SQLite has one
writer, and Cairnloop starts every transaction there, reads included (the
expiry sweep, the claim), with `BEGIN IMMEDIATE` (`prepare_engine` in
`cairnloop_core/database.py`); a process that finds the lock taken waits in
SQLite's busy handler, which sleeps between retries instead of being woken
when the lock is released. One worker process is the way to run the executor
on SQLite, as the design's single writer says."""


def _round_trip_ms(document: dict[str, Any]) -> float | None:
    trips = _get(document, "raw_limit", "postgresql", "round_trips")
    return 1000 / trips["per_second"] if trips else None


def _statements(document: dict[str, Any], stage: str) -> float | None:
    figure = _get(document, "transactions", "sqlite", "stages", stage)
    return figure.get("statements_per_action") if figure else None


STEP_STATEMENTS = (
    "the claim (`FOR UPDATE SKIP LOCKED`), the approval events' input hashes "
    "for the re-check, a savepoint, the tool's one insert, the savepoint's "
    "release, the status update and the audit event (`Executor.run_batch` in "
    "`cairnloop_core/executor.py`, `apply_moves` in `cairnloop_core/store.py`, "
    "`cairnloop_run` of internal_note). In a batch (`--batch-size`, 32 by "
    "default) the claim, the hash lookup, the update, the events and the "
    "commit are shared by up to 32 proposals, so each proposal costs about "
    "three round trips: the savepoint, the tool's insert and the release"
)


def _peer_note(document: dict[str, Any]) -> str:
    step = _get(document, "drain", "postgresql", "step_breakdown")
    runs = _get(document, "drain", "postgresql", "runs") or []
    trip = _round_trip_ms(document)
    text = "**Executor throughput against Procrastinate.** "
    if step:
        text += (
            f"One executor step on PostgreSQL took {_fmt(step['ms_per_step'])} ms "
            f"in this run: {_fmt(step['ms_in_statements_per_step'])} ms inside its "
            f"{_fmt(step['statements_per_step'])} statements "
            f"({_fmt(step['ms_per_statement'])} ms each"
            + (
                f", where a bare `SELECT 1` round trip took {_fmt(trip)} ms"
                if trip is not None
                else ""
            )
            + f") and {_fmt(step['ms_outside_statements_per_step'])} ms outside "
            "them: building each statement with SQLAlchemy Core, validating and "
            "hashing the input again for the re-check, calling the plugin's hooks, "
            f"and the commit. The statements are {STEP_STATEMENTS}. "
        )
        looped = step.get("worker_loop_ms_per_proposal")
        if looped:
            text += (
                "Through the `worker --once` loop, as in the drain, a proposal took "
                f"{_fmt(looped)} ms and "
                f"{_fmt(step['worker_loop_statements_per_proposal'])} statements, "
                "batches included. "
            )
    text += (
        "A Procrastinate job costs two calls of its stored functions (fetch, then "
        "finish) and runs nothing. "
    )
    by_processes = {run["processes"]: run["per_second"] for run in runs}
    if 1 in by_processes and 4 in by_processes and by_processes[1]:
        text += (
            f"Four Cairnloop worker processes drained {_fmt(by_processes[4])} "
            f"proposals/s against {_fmt(by_processes[1])} for one, on a "
            f"{document['machine'].get('cores')}-core machine they share with "
            "PostgreSQL."
        )
    return text


def _latency_note(document: dict[str, Any]) -> str:
    notify = _get(document, "latency", "postgresql", "notify")
    in_process = _get(document, "latency", "postgresql", "in_process")
    step = _get(document, "drain", "postgresql", "step_breakdown")
    decided = _statements(document, "decide")
    if not notify:
        return ""
    approve = notify["approve_call_p50_ms"]
    text = (
        f"**Approve-to-succeeded latency.** Of the p50 of {_fmt(notify['p50_ms'])} "
        f"ms, the approve call itself took {_fmt(approve)} ms (one transaction"
        + (f" of {_fmt(decided)} statements" if decided else "")
        + " plus `NOTIFY`, `Governance.approve` in `cairnloop_core/governance.py`)"
        f"; the other {_fmt(notify['p50_ms'] - approve)} ms are the wake-up and "
        "the worker's executor step"
    )
    if step:
        text += (
            f"; one executor step averaged {_fmt(step['ms_per_step'])} ms in the "
            "step breakdown under 2"
        )
    text += "."
    if in_process:
        text += (
            " In the same run, a worker woken in process instead of through "
            f"LISTEN/NOTIFY gave p50 {_fmt(in_process['p50_ms'])} ms; on a busy "
            "machine the two swap places from run to run."
        )
    return text


def method() -> str:
    return """## How each figure is measured

1. **Propose.** One caller proposes distinct internal notes (so none is a
   duplicate) one after another through `Cairnloop.propose`, after a few
   warm-up calls; each call is timed, and throughput is calls over the total.
2. **Executor throughput.** N internal-note proposals are proposed and approved
   through the facade, then 1 or 4 worker processes each run
   `Worker(app).run(once=True)`, the loop behind `cairnloop worker --once`,
   with one executor loop per process. Every process first starts, discovers
   plugins and connects; the clock starts at one go signal to all of them and
   stops when the last one has drained the queue (clock readings of each
   process on the shared monotonic clock). Process start-up is measured in 7.
   Afterwards every proposal must be `succeeded` with its note written. The
   step breakdown times single `Cairnloop.run_once` steps in the benchmark's
   own process, with SQLAlchemy's cursor events marking the time spent inside
   each statement (from handing it to the driver to its result).
3. **Approve-to-succeeded latency.** An embedded worker
   (`Worker(app).start()`, a thread) waits idle; each proposal is approved
   after the worker has been idle for 50 ms. The clock starts just before
   `approve` and stops when the executor reports `proposal_succeeded`, which
   the core logs on `cairnloop_core.events` only after the outcome's
   transaction has committed; a logging handler takes the time, so nothing
   polls the database. The approve call's own duration is recorded as well.
   On SQLite the worker runs on the deciding facade and is
   woken in process; on PostgreSQL it runs on a second facade in the same
   process, so only LISTEN/NOTIFY can wake it (`notify`, the figure the target
   uses), and, for comparison, on the deciding facade (`in_process`).
4. **Transactions per action.** K approval-required internal notes go through
   each stage separately: propose (`propose`), decide (`approve`), execute
   (`Cairnloop.run_once`, one executor step), and, on a second set, the
   `worker --once` loop. On PostgreSQL the benchmark database is used by
   nothing else; before and after each stage every connection is closed, each
   session flushes its statistics first with `pg_stat_force_next_flush()`,
   and the deltas of `xact_commit + xact_rollback` in `pg_stat_database` (read
   after `pg_stat_clear_snapshot()`) count the transactions. Each new session
   adds two of its own (the backend's start-up and the flush), which are
   subtracted; the method is checked on 10 known transactions and on an empty
   window before anything is counted. On SQLite, `set_trace_callback` on every
   connection (through a SQLAlchemy `connect` listener) sees each statement
   SQLite runs; `BEGIN` statements and any statement outside a transaction are
   counted.
5. **Raw limit.** Single-row inserts into a scratch table, each its own
   committed transaction (autocommit), through psycopg on one connection and
   on four (threads), and through `sqlite3` on a file with Cairnloop's settings
   (WAL, `synchronous=NORMAL`, foreign keys, busy timeout). `SELECT 1` round
   trips through psycopg give the scale of one statement. Executor throughput
   (2) is shown as a share of the single-connection limit and of the limit
   with as many connections as worker processes.
6. **Peer.** Procrastinate, the installed version, in its own database on the
   same server, its schema applied with `schema_manager.apply_schema()`. N
   jobs of an async no-op task are deferred one by one (`task.defer()`), then
   1 or 4 processes each run `app.run_worker_async(wait=False,
   concurrency=1)` through a `PsycopgConnector`, and one process runs at
   concurrency 4, Procrastinate's own way of running jobs side by side. The
   clock starts and stops as in 2, and every job must end `succeeded` (jobs are
   kept, as by default). What is compared: executed items per second with the
   same number of worker processes (and the same parallelism for the
   concurrency-4 run). A Cairnloop item is a governed run: claim, full
   re-check, one note written, outcome and audit event committed together. A
   Procrastinate item is a no-op job: fetch, run nothing, finish.
7. **Cold start.** The wall time of a fresh process, measured from the
   benchmark: `python -c pass`, `python -c "import cairnloop_core"`,
   `cairnloop tools` with every installed plugin blocked
   (`CAIRNLOOP_PLUGINS_BLOCK`), and `cairnloop tools` with 50 generated plugins
   on `PYTHONPATH` (each its own module, `*.dist-info` with METADATA and a
   `cairnloop.tools` entry point, a spec with a pydantic input, and scope,
   authorize, preview and run hooks). The listings are checked to show 0 and 50
   tools. Commands run interleaved, after two warm-up rounds; the median is
   reported.

## Limitations

- The throughput figures exclude process start-up and plugin discovery, which
  7 measures on its own.
- The 50-plugin start uses `*.dist-info` folders on `PYTHONPATH`, not wheels
  installed by pip into a virtual environment; discovery reads them the same
  way, but a large `site-packages` may add to it.
- The latency run waits a fixed 50 ms between approvals so that the worker is
  idle; that pause is part of the definition, not a synchronisation.
- The transaction count needs PostgreSQL 15 or newer and a database nobody
  else uses while it runs; the benchmark refuses to count when an empty window
  shows any transaction.
- The peer comparison measures work per item of a different size: Cairnloop
  writes a note and an audit event per item, Procrastinate's no-op job writes
  only its own status."""
