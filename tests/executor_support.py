"""Helpers for the executor and worker tests: tools built in code, a host
policy, waiting on real conditions, and the command line as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select

from cairnloop_core import (
    Actor,
    ActorKind,
    Allow,
    Cairnloop,
    Deny,
    Registry,
    RunContext,
    Settings,
    ToolSpec,
    hookimpl,
)
from cairnloop_core.schema import messages

T = TypeVar("T")

TESTS_DIR = Path(__file__).resolve().parent
CAIRNLOOP = str(Path(sys.executable).with_name("cairnloop"))
AGENT = Actor("support-bot", ActorKind.AGENT)
OPERATOR = Actor("alice", ActorKind.OPERATOR)


class PingInput(BaseModel):
    text: str = Field(min_length=1, max_length=100)


def tool_spec(name: str = "ping", **fields: Any) -> ToolSpec:
    """A low-write tool spec with a one-field input, overridable field by field."""
    values: dict[str, Any] = {
        "name": name,
        "title": "Ping",
        "description": "Sends a ping somewhere.",
        "risk_tier": "low_write",
        "input_model": PingInput,
        "retry_base_seconds": 0.001,
        "retry_max_seconds": 0.002,
    }
    values.update(fields)
    return ToolSpec(**values)


class InlineTool:
    """A tool plugin made in code; ``run(input, context)`` is its side effect.

    ``calls`` lists the context of every run, so a test can tell whether and
    with which idempotency key the tool was reached.
    """

    def __init__(
        self,
        spec: ToolSpec,
        run: Callable[[Any, RunContext], Any] | None = None,
        *,
        scopes: Iterable[str] = (),
    ) -> None:
        self.spec = spec
        self.scopes = list(scopes)
        self.calls: list[RunContext] = []
        self._run = run or (lambda input, context: {"echo": input.text})

    @hookimpl
    def cairnloop_scope(self, tool: ToolSpec) -> list[str]:
        return self.scopes

    @hookimpl
    def cairnloop_authorize(
        self, tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
    ) -> Allow:
        return Allow()

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: Any, actor: Actor, context: RunContext
    ) -> Any:
        self.calls.append(context)
        return self._run(input, context)


class HostPolicy:
    """The host: the actors' current grants, and a denial it can switch on."""

    def __init__(self, scopes: Iterable[str] | None = None) -> None:
        self.scopes = set(scopes) if scopes is not None else None
        self.denial: str | None = None

    @hookimpl
    def cairnloop_actor_scopes(self, actor: Actor) -> list[str] | None:
        return sorted(self.scopes) if self.scopes is not None else None

    @hookimpl
    def cairnloop_authorize(
        self, tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
    ) -> Deny | None:
        return Deny(self.denial) if self.denial else None


def registry_with(*tools: object, host: object | None = None) -> Registry:
    """A registry holding exactly these plugins, registered in code."""
    registry = Registry()
    for tool in tools:
        registry.register_tool(tool)
    if host is not None:
        registry.register_policy(host, name="host")
    return registry


class Apps:
    """Facades on one test database, each with its own registry, all closed
    at the end of the test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opened: list[Cairnloop] = []

    def open(
        self, registry: Registry | None = None, settings: Settings | None = None
    ) -> Cairnloop:
        app = Cairnloop(
            self.url,
            registry=registry if registry is not None else Registry(),
            settings=settings or Settings(),
        )
        if not self._opened:
            app.upgrade()
        self._opened.append(app)
        return app

    def close(self) -> None:
        for app in self._opened:
            app.close()


def approved(
    app: Cairnloop,
    tool: str,
    input: Mapping[str, Any],
    *,
    scopes: Iterable[str] = (),
    **options: Any,
) -> int:
    """Propose as the agent, approve as the operator; return the proposal id."""
    result = app.propose(tool, actor=AGENT, input=input, scopes=scopes, **options)
    assert result.proposal is not None, result
    assert result.outcome.value == "created", result
    app.approve(result.proposal.id, actor=OPERATOR)
    return result.proposal.id


def event_types(app: Cairnloop, proposal_id: int) -> list[str]:
    return [event.type for event in app.events(proposal_id)]


def note_rows(app: Cairnloop) -> list[dict[str, Any]]:
    """Every message row, oldest first."""
    with app.engine.connect() as connection:
        rows = connection.execute(select(messages).order_by(messages.c.id)).mappings()
        result = [dict(row) for row in rows]
        connection.rollback()
    return result


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float = 60.0,
    what: str = "a condition",
    interval: float = 0.02,
) -> T:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def status_of(app: Cairnloop, proposal_id: int) -> str:
    return app.get(proposal_id).status.value


def wait_for_status(
    app: Cairnloop, proposal_id: int, *statuses: str, timeout: float = 60.0
) -> str:
    return wait_for(
        lambda: status_of(app, proposal_id) in statuses and status_of(app, proposal_id),
        timeout=timeout,
        what=f"proposal {proposal_id} to become {' or '.join(statuses)}",
    )


# -- subprocesses ---------------------------------------------------------------


def install_fault_tools(folder: Path) -> str:
    """Make ``cairnloop_fault_tools`` an installed distribution for
    subprocesses: a real dist-info with its entry points; return the
    PYTHONPATH that finds it."""
    from cairnloop_fault_tools import ENTRY_POINTS

    dist_info = folder / "cairnloop_fault_tools-0.1.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cairnloop-fault-tools\nVersion: 0.1\n"
    )
    lines = ["[cairnloop.tools]"]
    lines += [f"{name} = {target}" for name, target in ENTRY_POINTS.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return os.pathsep.join([str(folder), str(TESTS_DIR)])


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CAIRNLOOP_DATABASE_URL"] = database_url
    env.pop("CAIRNLOOP_PLUGINS_ALLOW", None)
    env.pop("CAIRNLOOP_PLUGINS_BLOCK", None)
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAIRNLOOP, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_json(*args: str, env: Mapping[str, str]) -> Any:
    done = run_cli(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class WorkerProcess:
    """``cairnloop worker`` as a real subprocess, its stderr in a file."""

    def __init__(self, log: Path, env: Mapping[str, str], *args: str) -> None:
        self.log = log
        self._err = log.open("w")
        self._out = log.with_suffix(".out").open("w")
        self.process = subprocess.Popen(
            [CAIRNLOOP, "--log-level", "info", "worker", *args],
            env=dict(env),
            stdout=self._out,
            stderr=self._err,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.log.read_text()

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text()

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        wait_for(
            lambda: text in self.stderr() or self.process.poll() is not None,
            timeout=timeout,
            what=f"the worker to log {text!r}",
        )
        assert text in self.stderr(), self.stderr()

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._err.close()
            self._out.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def calls_in(marker: Path) -> list[dict[str, Any]]:
    if not marker.exists():
        return []
    return [json.loads(line) for line in marker.read_text().splitlines()]
