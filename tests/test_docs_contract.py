"""docs/plugin-contract.md keeps up with the code: every hook, its arguments,
every spec field, the derivation table and the selection variables."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cairnloop_core import RiskTier, ToolSpec, derive_approval_mode, hookspecs
from cairnloop_core.discovery import ALLOW_ENV, BLOCK_ENV, POLICY_GROUP, TOOL_GROUP

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "plugin-contract.md"
TEXT = CONTRACT.read_text()
HOOKSPECS = {
    name: function
    for name, function in vars(hookspecs).items()
    if callable(function) and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")
}


def section(heading: str) -> str:
    """The text under a '### ' heading, up to the next heading."""
    match = re.search(
        rf"^### {re.escape(heading)}\n(.*?)(?=^##)", TEXT, re.MULTILINE | re.DOTALL
    )
    assert match is not None, f"{CONTRACT.name} has no section '### {heading}'"
    return match.group(1)


def test_the_hookspecs_are_found() -> None:
    assert {"cairnloop_scope", "cairnloop_authorize", "cairnloop_run"} <= set(HOOKSPECS)


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hook_is_documented_with_its_arguments_and_an_example(
    hook: str,
) -> None:
    text = section(f"`{hook}`")
    arguments = inspect.signature(HOOKSPECS[hook]).parameters

    undocumented = [name for name in arguments if f"`{name}`" not in text]
    assert undocumented == [], f"{hook}: arguments missing from its section"
    assert f"def {hook}(" in text, f"{hook}: its section has no example"


@pytest.mark.parametrize("field", sorted(ToolSpec.model_fields))
def test_every_spec_field_is_documented(field: str) -> None:
    assert f"`{field}`" in TEXT


@pytest.mark.parametrize("tier", list(RiskTier))
def test_derivation_table_matches_the_code(tier: RiskTier) -> None:
    row = f"| `{tier.value}` | `{derive_approval_mode(tier).value}` |"
    assert row in TEXT


@pytest.mark.parametrize("name", [TOOL_GROUP, POLICY_GROUP, ALLOW_ENV, BLOCK_ENV])
def test_entry_point_groups_and_selection_variables_are_documented(
    name: str,
) -> None:
    assert f"`{name}`" in TEXT


def test_every_status_is_documented() -> None:
    for status in ("ok", "failed", "disabled"):
        assert f"| `{status}` |" in TEXT


def test_python_examples_compile() -> None:
    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)

    assert len(blocks) >= len(HOOKSPECS)
    for number, block in enumerate(blocks, start=1):
        compile(block, f"{CONTRACT.name} example {number}", "exec")
