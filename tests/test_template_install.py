"""Generated tools installed for real: the template rendered once per risk tier,
pip-installed beside the core into a fresh virtual environment, its own tests
run there, and each tool governed end to end through the cairnloop command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from template_support import REPO_ROOT, render_tool

pytestmark = pytest.mark.slow

INPUT = json.dumps({"target": "order-1042", "reason": "The parcel was lost."})

ANSWERS: dict[str, dict[str, str]] = {
    "low_write": {
        "tool_name": "Refund Order!",
        "tool_title": 'Refund the customer\'s "whole" order',
        "description": "Give the money for one order back — once.",
    },
    "read_only": {
        "tool_name": "look up customer",
        "tool_title": "Look up a customer",
        "description": "Read a customer's record.",
    },
    "high_write": {
        "tool_name": "Rückerstattung prüfen (manuell)",
        "tool_title": "Rückerstattung prüfen",
        "description": "Eine Rückerstattung von Hand prüfen und buchen.",
    },
    "destructive": {
        "tool_name": "Purge Data 2024",
        "tool_title": "Purge 2024 data",
        "description": "Delete every record from 2024.",
    },
}
TOOLS = {
    "low_write": "refund_order",
    "read_only": "look_up_customer",
    "high_write": "ruckerstattung_prufen_manuell",
    "destructive": "purge_data_2024",
}
MODES = {
    "low_write": "requires_approval",
    "read_only": "auto",
    "high_write": "requires_approval",
    "destructive": "always_block",
}
GENERATED_TEST_COUNTS = {
    "low_write": 4,
    "read_only": 4,
    "high_write": 5,
    "destructive": 5,
}


@dataclass
class ToolEnvironment:
    """A fresh virtual environment holding the core and every generated tool."""

    venv: Path
    packages: dict[str, Path]
    environ: dict[str, str]

    def run(
        self, *args: str | Path, cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cairnloop(self, database: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the venv's ``cairnloop`` command on the SQLite file ``database``."""
        return self.run(
            self.venv / "bin" / "cairnloop",
            "--database-url",
            f"sqlite:///{database}",
            *args,
            cwd=database.parent,
        )

    def cairnloop_json(self, database: Path, *args: str) -> Any:
        result = self.cairnloop(database, *args, "--json")
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)


def _clean_environ() -> dict[str, str]:
    # Nothing from the test run's own environment may choose the database,
    # the plugins or the interpreter of the fresh environment.
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith("CAIRNLOOP_")
    }


@pytest.fixture(scope="module")
def tool_env(tmp_path_factory: pytest.TempPathFactory) -> ToolEnvironment:
    root = tmp_path_factory.mktemp("template-install")
    packages = {
        tier: render_tool(root / "rendered" / tier, risk_tier=tier, **answers)
        for tier, answers in ANSWERS.items()
    }
    env = ToolEnvironment(root / "venv", packages, _clean_environ())

    # The venv borrows this environment's pip (pip --python) and builds
    # without isolation, so setuptools is installed once rather than per build.
    python = env.venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet")
    created = env.run(sys.executable, "-m", "venv", "--without-pip", env.venv, cwd=root)
    assert created.returncode == 0, created.stderr
    tooling = env.run(*pip, "setuptools>=77", cwd=root, timeout=600)
    assert tooling.returncode == 0, tooling.stderr
    installed = env.run(
        *pip,
        "--no-build-isolation",
        "-e",
        REPO_ROOT,
        *(f"{package}[test]" for package in packages.values()),
        cwd=root,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    return env


@pytest.mark.parametrize("tier", list(ANSWERS))
def test_generated_tests_pass_in_the_fresh_environment(
    tool_env: ToolEnvironment, tier: str
) -> None:
    result = tool_env.run(
        tool_env.venv / "bin" / "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=tool_env.packages[tier],
    )

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{GENERATED_TEST_COUNTS[tier]} passed in ")


def test_cairnloop_tools_lists_each_generated_tool_with_its_governance(
    tool_env: ToolEnvironment, tmp_path: Path
) -> None:
    listed = tool_env.cairnloop_json(tmp_path / "unused.db", "tools")
    plugins = tool_env.cairnloop_json(tmp_path / "unused.db", "plugins")

    tools = {tool["name"]: tool for tool in listed}
    records = {record["name"]: record for record in plugins}
    for tier, name in TOOLS.items():
        tool = tools[name]
        assert tool["risk_tier"] == tier
        assert tool["approval_mode"] == MODES[tier]
        assert tool["title"] == ANSWERS[tier]["tool_title"]
        assert tool["description"] == ANSWERS[tier]["description"]
        assert tool["scopes"] == []
        assert tool["version"] == "0.1.0"
        assert tool["input_schema"]["required"] == ["target", "reason"]
        assert records[name]["status"] == "ok"
        assert records[name]["distribution"] == "cairnloop-" + name.replace("_", "-")


def test_low_write_tool_waits_for_an_operator_then_runs_once(
    tool_env: ToolEnvironment, tmp_path: Path
) -> None:
    db = tmp_path / "governed.db"
    assert tool_env.cairnloop(db, "db", "upgrade").returncode == 0

    proposed = tool_env.cairnloop_json(
        db, "propose", "refund_order", "--actor", "helper-bot", "--input", INPUT
    )
    early = tool_env.cairnloop(db, "worker", "--once")
    waiting = tool_env.cairnloop_json(db, "inbox")
    approved = tool_env.cairnloop(db, "approve", "1", "--actor", "olivia")
    ran = tool_env.cairnloop(db, "worker", "--once")
    again = tool_env.cairnloop(db, "worker", "--once")
    shown = tool_env.cairnloop_json(db, "show", "1")
    audit = tool_env.cairnloop(db, "audit", "verify")

    assert (proposed["outcome"], proposed["status"]) == ("created", "pending")
    assert early.stdout == "Handled 0 proposal(s).\n"
    assert [(p["id"], p["tool"]) for p in waiting] == [(1, "refund_order")]
    assert approved.stdout == "Proposal 1 approved; status approved.\n"
    assert ran.stdout == "Handled 1 proposal(s).\n"
    assert again.stdout == "Handled 0 proposal(s).\n"
    assert shown["status"] == "succeeded"
    assert shown["result"]["target"] == "order-1042"
    assert [e["type"] for e in shown["events"]] == [
        "proposed",
        "approved",
        "started",
        "succeeded",
    ]
    assert audit.stdout == "Audit trail intact: 4 event(s) verified.\n"


def test_read_only_tool_runs_without_approval(
    tool_env: ToolEnvironment, tmp_path: Path
) -> None:
    db = tmp_path / "governed.db"
    assert tool_env.cairnloop(db, "db", "upgrade").returncode == 0

    proposed = tool_env.cairnloop_json(
        db, "propose", "look_up_customer", "--actor", "helper-bot", "--input", INPUT
    )
    waiting = tool_env.cairnloop_json(db, "inbox")
    ran = tool_env.cairnloop(db, "worker", "--once")
    shown = tool_env.cairnloop_json(db, "show", "1")

    assert (proposed["outcome"], proposed["status"]) == ("created", "approved")
    assert waiting == []
    assert ran.stdout == "Handled 1 proposal(s).\n"
    assert shown["status"] == "succeeded"
    assert shown["decided_by"] == "cairnloop"
    assert [(e["type"], e["actor"]["kind"]) for e in shown["events"]] == [
        ("proposed", "agent"),
        ("approved", "system"),
        ("started", "system"),
        ("succeeded", "system"),
    ]


def test_high_write_tool_refuses_agents_and_needs_a_second_operator(
    tool_env: ToolEnvironment, tmp_path: Path
) -> None:
    db = tmp_path / "governed.db"
    tool = TOOLS["high_write"]
    assert tool_env.cairnloop(db, "db", "upgrade").returncode == 0

    by_agent = tool_env.cairnloop(
        db, "propose", tool, "--actor", "helper-bot", "--input", INPUT, "--json"
    )
    by_operator = tool_env.cairnloop_json(
        db, "propose", tool, "--actor", "olivia", "--actor-kind", "operator",
        "--input", INPUT,
    )  # fmt: skip
    self_approval = tool_env.cairnloop(db, "approve", "2", "--actor", "olivia")
    approved = tool_env.cairnloop(db, "approve", "2", "--actor", "omar")
    ran = tool_env.cairnloop(db, "worker", "--once")
    shown = tool_env.cairnloop_json(db, "show", "2")

    assert by_agent.returncode == 1
    refusal = json.loads(by_agent.stdout)
    assert (refusal["outcome"], refusal["reason"]) == (
        "policy_denied",
        f"{tool} may be proposed by operators only, not agent:helper-bot.",
    )
    assert (by_operator["outcome"], by_operator["status"]) == ("created", "pending")
    assert self_approval.returncode == 1
    assert self_approval.stderr == (
        "Refused: Proposal 2 was proposed by 'olivia', who cannot also approve it; "
        "another operator must decide.\n"
    )
    assert approved.returncode == 0
    assert ran.stdout == "Handled 1 proposal(s).\n"
    assert (shown["status"], shown["decided_by"]) == ("succeeded", "omar")


def test_destructive_tool_is_blocked_and_never_runs(
    tool_env: ToolEnvironment, tmp_path: Path
) -> None:
    db = tmp_path / "governed.db"
    assert tool_env.cairnloop(db, "db", "upgrade").returncode == 0

    proposed = tool_env.cairnloop(
        db, "propose", "purge_data_2024", "--actor", "olivia",
        "--actor-kind", "operator", "--input", INPUT, "--json",
    )  # fmt: skip
    approval = tool_env.cairnloop(db, "approve", "1", "--actor", "omar")
    ran = tool_env.cairnloop(db, "worker", "--once")
    shown = tool_env.cairnloop_json(db, "show", "1")

    assert proposed.returncode == 1
    refusal = json.loads(proposed.stdout)
    assert (refusal["outcome"], refusal["status"], refusal["reason"]) == (
        "blocked",
        "blocked",
        "Tool 'purge_data_2024' is destructive and always blocked; "
        "nobody can approve it.",
    )
    assert approval.returncode == 1
    assert approval.stderr == (
        "Refused: Proposal 1 is no longer pending (it is blocked); "
        "it cannot be approved and nothing was changed.\n"
    )
    assert ran.stdout == "Handled 0 proposal(s).\n"
    assert shown["status"] == "blocked"
    assert shown["result"] is None
    assert [e["type"] for e in shown["events"]] == ["proposed"]
