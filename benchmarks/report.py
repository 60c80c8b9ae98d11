"""The results document: comparisons and targets derived from the measured
figures, the JSON file, and docs/benchmarks.md rendered from it.

``python -m benchmarks.report`` regenerates the page from
``benchmarks/results/latest.json`` without measuring again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DOCS",
    "LATEST",
    "complete",
    "render",
    "render_tables",
    "write_docs",
    "write_json",
]

REPOSITORY = Path(__file__).resolve().parent.parent
LATEST = REPOSITORY / "benchmarks" / "results" / "latest.json"
DOCS = REPOSITORY / "docs" / "benchmarks.md"

MAX_TRANSACTIONS = 3
PEER_FACTOR = 2.0
LATENCY_P50_MS = 20.0
PLUGIN_FACTOR = 2.0
KIND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


# -- derived figures ---------------------------------------------------------------


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the comparisons and the target verdicts to a results document."""
    results = document["results"]
    document["comparisons"] = {
        "executor_vs_raw_limit": _executor_vs_raw(results),
        "executor_vs_peer": _executor_vs_peer(results),
        "cold_start": _cold_start_ratios(results),
    }
    document["targets"] = _targets(results, document["comparisons"])
    return document


def _ratio(numerator: float, denominator: float) -> float | None:
    if not denominator:
        return None
    return float(f"{numerator / denominator:.4g}")


def _executor_vs_raw(results: dict[str, Any]) -> list[dict[str, Any]]:
    drain, raw = results.get("drain"), results.get("raw_limit")
    if not drain or not raw:
        return []
    rows = []
    for kind, measured in drain.items():
        runs = measured["runs"]
        limits = raw.get(kind, {})
        single = limits.get("connections_1", {}).get("per_second")
        for run in runs:
            matching = limits.get(f"connections_{run['processes']}", {}).get(
                "per_second", single
            )
            rows.append(
                {
                    "database": kind,
                    "processes": run["processes"],
                    "executor_per_second": run["per_second"],
                    "raw_1_connection_per_second": single,
                    "ratio_to_raw_1_connection": _ratio(run["per_second"], single),
                    "raw_same_connections_per_second": matching,
                    "ratio_to_raw_same_connections": _ratio(
                        run["per_second"], matching
                    ),
                }
            )
    return rows


def _executor_vs_peer(results: dict[str, Any]) -> list[dict[str, Any]]:
    drain, peer = results.get("drain"), results.get("peer")
    if not drain or not peer:
        return []
    postgresql = drain.get("postgresql", {"runs": []})
    cairnloop = {run["processes"]: run for run in postgresql["runs"]}
    rows = []
    for run in peer["postgresql"]["runs"]:
        parallel = run["processes"] * run["concurrency"]
        ours = cairnloop.get(parallel)
        if ours is None:
            continue
        rows.append(
            {
                "cairnloop_processes": parallel,
                "cairnloop_per_second": ours["per_second"],
                "procrastinate_processes": run["processes"],
                "procrastinate_concurrency": run["concurrency"],
                "procrastinate_per_second": run["per_second"],
                "ratio": _ratio(ours["per_second"], run["per_second"]),
            }
        )
    return rows


def _cold_start_ratios(results: dict[str, Any]) -> dict[str, Any]:
    cold = results.get("cold_start")
    if not cold:
        return {}
    bare = cold["python_bare"]["median_ms"]
    none = cold["tools_no_plugins"]["median_ms"]
    fifty = cold["tools_50_plugins"]["median_ms"]
    return {
        "tools_50_over_tools_none": _ratio(fifty, none),
        "tools_none_over_bare": _ratio(none, bare),
        "tools_50_over_bare": _ratio(fifty, bare),
        "import_over_bare": _ratio(cold["import_cairnloop_core"]["median_ms"], bare),
    }


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _verdict(measured: bool, met: bool) -> str:
    if not measured:
        return "not measured"
    return "met" if met else "not met"


def _targets(
    results: dict[str, Any], comparisons: dict[str, Any]
) -> list[dict[str, Any]]:
    targets = []

    counts = results.get("transactions") or {}
    parts = []
    for kind, data in counts.items():
        stages = data["stages"]
        parts.append(
            f"{KIND_NAMES[kind]} {_num(data['per_action_total'])} (propose "
            f"{_num(stages['propose']['per_action'])} + decide "
            f"{_num(stages['decide']['per_action'])} + execute "
            f"{_num(stages['execute']['per_action'])})"
        )
    targets.append(
        {
            "id": "transactions",
            "target": "At most 3 transactions per approval-required action "
            "(propose, decide, execute)",
            "figure": "; ".join(parts) or "-",
            "status": _verdict(
                bool(counts),
                all(d["per_action_total"] <= MAX_TRANSACTIONS for d in counts.values()),
            ),
        }
    )

    pairs = comparisons["executor_vs_peer"]
    targets.append(
        {
            "id": "peer",
            "target": "Executor throughput at least 2x Procrastinate's on the "
            "same PostgreSQL",
            "figure": "; ".join(
                f"Cairnloop {_processes(p['cairnloop_processes'])} vs "
                f"Procrastinate {_processes(p['procrastinate_processes'])} x "
                f"concurrency {p['procrastinate_concurrency']}: "
                f"{_num(p['ratio'])}x ({_num(p['cairnloop_per_second'])}/s vs "
                f"{_num(p['procrastinate_per_second'])}/s)"
                for p in pairs
            )
            or "-",
            "status": _verdict(
                bool(pairs), all((p["ratio"] or 0) >= PEER_FACTOR for p in pairs)
            ),
        }
    )

    notify = ((results.get("latency") or {}).get("postgresql") or {}).get("notify")
    targets.append(
        {
            "id": "latency",
            "target": "Approve-to-succeeded p50 under 20 ms on PostgreSQL",
            "figure": f"p50 {_num(notify['p50_ms'])} ms, p99 "
            f"{_num(notify['p99_ms'])} ms (woken by LISTEN/NOTIFY)"
            if notify
            else "-",
            "status": _verdict(
                notify is not None,
                notify is not None and notify["p50_ms"] < LATENCY_P50_MS,
            ),
        }
    )

    cold = results.get("cold_start")
    ratios = comparisons["cold_start"]
    targets.append(
        {
            "id": "cold_start",
            "target": "`cairnloop tools` with 50 plugins under 2x its start with none",
            "figure": f"{_num(ratios['tools_50_over_tools_none'])}x "
            f"({_num(cold['tools_50_plugins']['median_ms'])} ms vs "
            f"{_num(cold['tools_no_plugins']['median_ms'])} ms)"
            if cold
            else "-",
            "status": _verdict(
                bool(cold),
                bool(cold) and ratios["tools_50_over_tools_none"] < PLUGIN_FACTOR,
            ),
        }
    )
    return targets


# -- files ---------------------------------------------------------------------------


def write_docs(document: dict[str, Any], path: Path = DOCS) -> None:
    """Render ``document`` into the Markdown page at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(document))


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` through a temporary file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)


# -- Markdown ------------------------------------------------------------------------


class Percent(float):
    """A ratio shown as a percentage in the tables."""


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Percent):
        return f"{value * 100:.2g}%"
    if isinstance(value, float):
        if value.is_integer():
            return f"{int(value):,}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _percent(value: float | None) -> Percent | None:
    return None if value is None else Percent(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(_num(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(document: dict[str, Any]) -> str:
    """The targets and every measured table, as Markdown."""
    results = document["results"]
    sections = [
        "## Targets\n\n"
        + _table(
            ["target", "measured", "status"],
            [[t["target"], t["figure"], t["status"]] for t in document["targets"]],
        )
    ]
    measured = [render(document) for name, render in _SECTIONS if results.get(name)]
    if measured:
        sections.append("## Results\n\n" + "\n\n".join(measured))
    return "\n\n".join(sections) + "\n"


def _propose_section(document: dict[str, Any]) -> str:
    data = document["results"]["propose"]
    rows = [
        [
            KIND_NAMES[kind],
            r["count"],
            r["per_second"],
            r["p50_ms"],
            r["p99_ms"],
            r["max_ms"],
        ]
        for kind, r in data.items()
    ]
    return "### 1. Propose through the facade\n\n" + _table(
        ["database", "proposals", "per second", "p50 ms", "p99 ms", "max ms"], rows
    )


def _drain_section(document: dict[str, Any]) -> str:
    ratios = {
        (c["database"], c["processes"]): c
        for c in document["comparisons"]["executor_vs_raw_limit"]
    }
    rows = []
    steps = []
    for kind, measured in document["results"]["drain"].items():
        step = measured["step_breakdown"]
        steps.append(
            [
                KIND_NAMES[kind],
                step["ms_per_step"],
                step["statements_per_step"],
                step["ms_in_statements_per_step"],
                step["ms_per_statement"],
                step["ms_outside_statements_per_step"],
                step.get("worker_loop_ms_per_proposal"),
                step.get("worker_loop_statements_per_proposal"),
            ]
        )
        for run in measured["runs"]:
            ratio = ratios.get((kind, run["processes"]), {})
            rows.append(
                [
                    KIND_NAMES[kind],
                    run["processes"],
                    run["count"],
                    run["seconds"],
                    run["per_second"],
                    _percent(ratio.get("ratio_to_raw_1_connection")),
                    _percent(ratio.get("ratio_to_raw_same_connections")),
                ]
            )
    return (
        "### 2. Executor throughput\n\n"
        + _table(
            [
                "database",
                "worker processes",
                "proposals",
                "seconds",
                "proposals/s",
                "of raw limit (1 connection)",
                "of raw limit (same connections)",
            ],
            rows,
        )
        + (
            "\n\nWhere the time of one executor step goes (single steps in one "
            "process, timed around each statement the engine sends):\n\n"
            + _table(
                [
                    "database",
                    "ms per step",
                    "statements",
                    "ms in statements",
                    "ms per statement",
                    "ms outside statements",
                    "ms per proposal through the `worker --once` loop",
                    "its statements",
                ],
                steps,
            )
        )
    )


def _latency_section(document: dict[str, Any]) -> str:
    rows = [
        [
            KIND_NAMES[kind],
            r["wake"],
            r["count"],
            r["p50_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["approve_call_p50_ms"],
        ]
        for kind, variants in document["results"]["latency"].items()
        for r in variants.values()
    ]
    return "### 3. Approve-to-succeeded latency, idle embedded worker\n\n" + _table(
        [
            "database",
            "woken by",
            "approvals",
            "p50 ms",
            "p99 ms",
            "max ms",
            "of which the approve call, p50 ms",
        ],
        rows,
    )


STAGES = ("propose", "decide", "execute", "worker_once_loop")


def _transactions_section(document: dict[str, Any]) -> str:
    counts = document["results"]["transactions"]
    rows = []
    for kind, data in counts.items():
        stages = data["stages"]
        rows.append(
            [KIND_NAMES[kind], data["actions"]]
            + [stages[name]["per_action"] for name in STAGES[:3]]
            + [data["per_action_total"], stages["worker_once_loop"]["per_action"]]
        )
    section = "### 4. Transactions per approval-required action\n\n" + _table(
        [
            "database",
            "actions counted",
            "propose",
            "decide",
            "execute",
            "total",
            "execute via the `worker --once` loop",
        ],
        rows,
    )
    traced = counts.get("sqlite", {}).get("stages", {})
    if all("statements_per_action" in traced.get(name, {}) for name in STAGES):
        section += (
            "\n\nStatements SQLite executed per action (each one a round trip "
            "to the database on PostgreSQL, where psycopg also sends its own "
            "`BEGIN`):\n\n"
            + _table(
                [
                    "propose",
                    "decide",
                    "execute",
                    "execute via the `worker --once` loop",
                ],
                [[traced[name]["statements_per_action"] for name in STAGES]],
            )
        )
    return section


def _raw_section(document: dict[str, Any]) -> str:
    rows = [
        [
            KIND_NAMES[kind],
            r.get("statement", "single-row INSERT, autocommit"),
            r["connections"],
            r["count"],
            r["seconds"],
            r["per_second"],
            round(1000 / r["per_second"] * r["connections"], 3),
        ]
        for kind, variants in document["results"]["raw_limit"].items()
        for r in variants.values()
    ]
    return "### 5. Raw limit of the database\n\n" + _table(
        [
            "database",
            "statement",
            "connections",
            "statements",
            "seconds",
            "per second",
            "ms each",
        ],
        rows,
    )


def _peer_section(document: dict[str, Any]) -> str:
    peer = document["results"]["peer"]["postgresql"]
    ratios = {
        (c["procrastinate_processes"], c["procrastinate_concurrency"]): c
        for c in document["comparisons"]["executor_vs_peer"]
    }
    rows = []
    for run in peer["runs"]:
        pair = ratios.get((run["processes"], run["concurrency"]), {})
        rows.append(
            [
                f"{run['processes']} x {run['concurrency']}",
                run["count"],
                run["defer_per_second"],
                run["per_second"],
                pair.get("cairnloop_processes"),
                pair.get("cairnloop_per_second"),
                pair.get("ratio"),
            ]
        )
    return (
        f"### 6. Peer: Procrastinate {peer['procrastinate_version']} on the same "
        "PostgreSQL\n\n"
        + _table(
            [
                "processes x concurrency",
                "jobs",
                "deferred/s",
                "executed/s",
                "Cairnloop processes",
                "Cairnloop proposals/s",
                "Cairnloop / Procrastinate",
            ],
            rows,
        )
    )


def _cold_start_section(document: dict[str, Any]) -> str:
    cold = document["results"]["cold_start"]
    bare = cold["python_bare"]["median_ms"]
    labels = {
        "python_bare": "`python -c pass`",
        "import_cairnloop_core": '`python -c "import cairnloop_core"`',
        "tools_no_plugins": "`cairnloop tools`, no plugins",
        "tools_50_plugins": f"`cairnloop tools`, {cold['plugins_generated']} plugins",
    }
    rows = [
        [
            label,
            cold[key]["runs"],
            cold[key]["median_ms"],
            cold[key]["min_ms"],
            cold[key]["max_ms"],
            _ratio(cold[key]["median_ms"], bare),
        ]
        for key, label in labels.items()
    ]
    return "### 7. Cold start of `cairnloop tools`\n\n" + _table(
        ["command", "runs", "median ms", "min ms", "max ms", "x bare start"], rows
    )


_SECTIONS = (
    ("propose", _propose_section),
    ("drain", _drain_section),
    ("latency", _latency_section),
    ("transactions", _transactions_section),
    ("raw_limit", _raw_section),
    ("peer", _peer_section),
    ("cold_start", _cold_start_section),
)


def _machine_section(document: dict[str, Any]) -> str:
    machine = document["machine"]
    rows = [
        ["CPU", machine["cpu_model"]],
        ["cores", machine["cores"]],
        ["memory", f"{machine['memory_gib']} GiB"],
        ["OS", machine["os"]],
        ["Python", machine["python"]],
        ["SQLite", machine["sqlite"]],
    ]
    postgresql = machine.get("postgresql")
    if postgresql:
        rows.append(["PostgreSQL", postgresql.get("server_version")])
        settings = ", ".join(
            f"{k}={v}" for k, v in postgresql.items() if k != "server_version"
        )
        rows.append(["PostgreSQL settings", settings])
    packages = ", ".join(
        f"{name} {version}" for name, version in machine["packages"].items() if version
    )
    rows.append(["packages", packages])
    rows.append(
        [
            "load average (1, 5, 15 min)",
            f"{machine['load_average_at_start']} at start, "
            f"{machine.get('load_average_at_end')} at end",
        ]
    )
    return "## Machine\n\n" + _table(["", ""], rows)


def render(document: dict[str, Any]) -> str:
    """The whole docs/benchmarks.md page for ``document``."""
    from benchmarks.notes import explanations, introduction, method

    parts = [
        introduction(document),
        render_tables(document),
        explanations(document),
        _machine_section(document),
        method(),
    ]
    return "\n\n".join(part.strip() for part in parts if part.strip()) + "\n"


def main() -> int:
    if not LATEST.exists():
        print(
            f"Error: {LATEST} does not exist; run 'make bench' first.", file=sys.stderr
        )
        return 2
    document = json.loads(LATEST.read_text())
    write_docs(document)
    print(f"Wrote {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
