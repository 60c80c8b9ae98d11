"""Non-transactional tools that misbehave on cue, for worker subprocesses.

Each call appends one JSON line (idempotency key, attempt, process id) to the
file named by the input's ``marker``, standing in for an external API that
records the keys it saw. ``crash_on`` lists attempts on which the worker
process kills itself with SIGKILL (only where ``CAIRNLOOP_FAULT_TOOLS_CRASH=1``,
so the test process can never run it); ``hold_until`` names a file the call
waits for before it answers.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cairnloop_core import Actor, Allow, RunContext, ToolSpec, hookimpl

CRASH_ENV = "CAIRNLOOP_FAULT_TOOLS_CRASH"


class ScriptInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker: str = Field(min_length=1)
    crash_on: list[int] = Field(default_factory=list)
    hold_until: str | None = None


class FaultTool:
    """One scripted tool; the instances below are its entry points."""

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec

    @hookimpl
    def cairnloop_authorize(
        self, tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
    ) -> Allow:
        return Allow()

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: ScriptInput, actor: Actor, context: RunContext
    ) -> dict[str, Any]:
        call = {
            "key": context.idempotency_key,
            "attempt": context.attempt,
            "pid": os.getpid(),
        }
        with open(input.marker, "a", encoding="utf-8") as marker:
            marker.write(json.dumps(call) + "\n")
        if context.attempt in input.crash_on and os.environ.get(CRASH_ENV) == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        if input.hold_until is not None:
            while not Path(input.hold_until).exists():
                time.sleep(0.02)
        return {"attempt": context.attempt}


def _spec(name: str, **settings: Any) -> ToolSpec:
    return ToolSpec(
        name=name,
        title=name.replace("_", " ").capitalize(),
        description="A scripted external call used by the fault tests.",
        risk_tier="low_write",
        input_model=ScriptInput,
        retry_base_seconds=0.05,
        retry_max_seconds=0.1,
        **settings,
    )


scripted_call = FaultTool(_spec("scripted_call", timeout_seconds=1.0, max_attempts=2))
scripted_call_once = FaultTool(
    _spec("scripted_call_once", timeout_seconds=1.0, max_attempts=1)
)
patient_call = FaultTool(_spec("patient_call", timeout_seconds=120.0, max_attempts=3))

ENTRY_POINTS = {
    "scripted_call": "cairnloop_fault_tools:scripted_call",
    "scripted_call_once": "cairnloop_fault_tools:scripted_call_once",
    "patient_call": "cairnloop_fault_tools:patient_call",
}
