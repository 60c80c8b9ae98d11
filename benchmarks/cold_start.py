"""Measurement 7: the wall time of ``cairnloop tools`` as a fresh process, with
no plugins and with 50 generated plugins, against the bare interpreter."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.places import BenchError, Places
from benchmarks.sizes import Sizes

__all__ = ["generate_plugins", "measure"]

logger = logging.getLogger(__name__)

PLUGIN_COUNT = 50
WARMUP_ROUNDS = 2
BLOCK_ENV = "CAIRNLOOP_PLUGINS_BLOCK"

PLUGIN_MODULE = '''"""Generated benchmark tool number {index}."""

from pydantic import BaseModel, Field

from cairnloop_core import Allow, ToolSpec, hookimpl


class EchoInput(BaseModel):
    text: str = Field(min_length=1, max_length=200, description="What to echo.")
    times: int = Field(default=1, ge=1, le=10)


spec = ToolSpec(
    name="bench_tool_{index:02d}",
    title="Benchmark tool {index}",
    description="Echoes its input; generated to measure plugin discovery.",
    risk_tier="low_write",
    input_model=EchoInput,
)


@hookimpl
def cairnloop_scope(tool):
    return ["bench:{index:02d}"]


@hookimpl
def cairnloop_authorize(tool, actor, context):
    return Allow()


@hookimpl
def cairnloop_preview(tool, input):
    return f"Echoes {{input.text!r}} {{input.times}} time(s)."


@hookimpl
def cairnloop_run(tool, input, actor, context):
    return {{"echo": [input.text] * input.times}}
'''


def generate_plugins(folder: Path, count: int = PLUGIN_COUNT) -> list[str]:
    """Write ``count`` plugin distributions into ``folder``; return tool names.

    Each is a module plus a ``*.dist-info`` with METADATA and an entry point
    in ``cairnloop.tools``, as pip would leave it on a path entry.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        module = f"cl_bench_tool_{index:02d}"
        tool = f"bench_tool_{index:02d}"
        (folder / f"{module}.py").write_text(PLUGIN_MODULE.format(index=index))
        info = folder / f"{module}-1.0.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\n"
            f"Name: cl-bench-tool-{index:02d}\n"
            "Version: 1.0.0\n"
            "Summary: A generated Cairnloop tool for the benchmarks.\n"
        )
        (info / "entry_points.txt").write_text(
            f"[cairnloop.tools]\n{tool} = {module}\n"
        )
        (info / "top_level.txt").write_text(f"{module}\n")
        names.append(tool)
    return names


def measure(places: Places, sizes: Sizes) -> dict[str, Any]:
    """Median wall time of each command over ``sizes.cold_start_runs`` rounds.

    The commands run interleaved, one of each per round, after two warm-up
    rounds (so bytecode is compiled and files are cached in every variant).
    """
    command = Path(sys.executable).with_name("cairnloop")
    if not command.exists():
        raise BenchError(
            f"{command} is missing; install the project in this environment with "
            "'.venv/bin/pip install -e \".[dev,bench]\"'."
        )
    folder = places.scratch / "plugins50"
    expected = generate_plugins(folder)

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "CAIRNLOOP_PLUGINS_ALLOW", BLOCK_ENV)
    }
    # Block every plugin installed in the environment (internal_note among
    # them) so that "no plugins" loads none and the 50 generated ones are the
    # only difference between the two tool listings.
    quiet = {**base, BLOCK_ENV: ",".join(_installed_plugins()) or "none"}
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        "python_bare": ([sys.executable, "-c", "pass"], base),
        "import_cairnloop_core": (
            [sys.executable, "-c", "import cairnloop_core"],
            base,
        ),
        "tools_no_plugins": ([str(command), "tools"], quiet),
        "tools_50_plugins": (
            [str(command), "tools"],
            {**quiet, "PYTHONPATH": str(folder)},
        ),
    }
    _check_listing(command, quiet, [])
    _check_listing(command, {**quiet, "PYTHONPATH": str(folder)}, expected)

    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(WARMUP_ROUNDS + sizes.cold_start_runs):
        for name, (argv, env) in variants.items():
            seconds = _time(argv, env, places.scratch)
            if round_number >= WARMUP_ROUNDS:
                samples[name].append(seconds)

    result: dict[str, Any] = {"plugins_generated": len(expected)}
    for name, values in samples.items():
        result[name] = {
            "runs": len(values),
            "median_ms": round(statistics.median(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
        logger.info(
            "%s: median %s ms",
            name,
            result[name]["median_ms"],
            extra={"event": "bench_cold_start_measured"},
        )
    return result


def _installed_plugins() -> list[str]:
    groups = ("cairnloop.tools", "cairnloop.policies")
    return sorted(
        {p.name for g in groups for p in importlib.metadata.entry_points(group=g)}
    )


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} exited with {completed.returncode}: "
            f"{completed.stderr.decode(errors='replace').strip()[-300:]}"
        )
    return elapsed


def _check_listing(command: Path, env: dict[str, str], expected: list[str]) -> None:
    completed = subprocess.run(
        [str(command), "tools", "--json"], env=env, capture_output=True, text=True
    )
    listed = (
        sorted(tool["name"] for tool in json.loads(completed.stdout))
        if completed.returncode == 0
        else None
    )
    if listed != sorted(expected):
        raise BenchError(
            f"'cairnloop tools' listed {listed} where the benchmark expected "
            f"{len(expected)} generated tool(s): {completed.stderr.strip()[-300:]}"
        )
