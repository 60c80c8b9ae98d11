"""Worker processes started together: each prepares, reports ready, waits for
one go, works, and reports when it finished on the shared monotonic clock."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks.places import BenchError

__all__ = ["ChildReport", "run_together"]

REPOSITORY = Path(__file__).resolve().parent.parent
READY = "ready"
GO = "go\n"
FINISH_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class ChildReport:
    """What one worker process did after the go."""

    handled: int | None
    finished: float


@dataclass(frozen=True)
class TogetherResult:
    """Wall time from the go to the last process finishing, and each report."""

    seconds: float
    reports: list[ChildReport]


def child_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.child", *arguments]


def run_together(commands: list[list[str]]) -> TogetherResult:
    """Start every command, release them at once, and time them to the last.

    Raises ``BenchError`` with the child's own error when one fails or is
    still running after ``FINISH_TIMEOUT_SECONDS``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPOSITORY), env.get("PYTHONPATH")) if part
    )
    children: list[tuple[subprocess.Popen[str], IO[str]]] = []
    with contextlib.ExitStack() as stack:
        for command in commands:
            errors: IO[str] = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            stack.callback(_reap, process)
            children.append((process, errors))

        # A process that hangs is killed, so its silence ends the run with
        # its error output instead of blocking it for good.
        watchdog = threading.Timer(
            FINISH_TIMEOUT_SECONDS, _kill_all, [p for p, _ in children]
        )
        watchdog.daemon = True
        watchdog.start()
        stack.callback(watchdog.cancel)

        for process, errors in children:
            _expect_line(process, errors, READY)

        go = time.monotonic()
        for process, _ in children:
            assert process.stdin is not None
            process.stdin.write(GO)
            process.stdin.flush()
        reports = [_report(process, errors) for process, errors in children]
    return TogetherResult(max(r.finished for r in reports) - go, reports)


def _describe(process: subprocess.Popen[str]) -> str:
    arguments = process.args
    if isinstance(arguments, list | tuple):
        return " ".join(str(part) for part in arguments[3:])
    return str(arguments)


def _kill_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _expect_line(process: subprocess.Popen[str], errors: IO[str], wanted: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line.startswith(wanted):
        return line
    process.wait(timeout=30)
    errors.seek(0)
    # The last line of a traceback is the error itself.
    tail = errors.read().strip().splitlines()[-1:]
    raise BenchError(
        f"worker process {_describe(process)!r} exited with "
        f"{process.returncode} instead of reporting {wanted!r}: "
        + (" | ".join(tail) or "no error output")
    )


def _report(process: subprocess.Popen[str], errors: IO[str]) -> ChildReport:
    line = _expect_line(process, errors, "{")
    data: dict[str, Any] = json.loads(line)
    process.wait(timeout=FINISH_TIMEOUT_SECONDS)
    handled = data.get("handled")
    return ChildReport(
        None if handled is None else int(handled), float(data["finished"])
    )
