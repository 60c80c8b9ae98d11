"""The tool spec: fail-closed approval modes, validation with readable
messages, immutability, the input's JSON Schema, and the version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import PluginDist, PluginSite, tool_source
from pydantic import BaseModel, Field, ValidationError

from cairnloop_core import (
    ApprovalMode,
    Registry,
    RiskTier,
    ToolSpec,
    derive_approval_mode,
)
from cairnloop_core.registry import describe_validation_error


class NoteInput(BaseModel):
    conversation_id: str = Field(min_length=1)
    content: str = Field(min_length=1, max_length=5000, description="The note.")


def make_spec(**fields: Any) -> ToolSpec:
    values: dict[str, Any] = {
        "name": "note",
        "title": "Add note",
        "description": "Adds a note.",
        "risk_tier": "low_write",
        "input_model": NoteInput,
    }
    values.update(fields)
    return ToolSpec(**values)


def spec_error(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        make_spec(**fields)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("tier", "mode"),
    [
        ("read_only", "auto"),
        ("low_write", "requires_approval"),
        ("high_write", "requires_approval"),
        ("destructive", "always_block"),
    ],
)
def test_approval_mode_is_derived_from_the_risk_tier(tier: str, mode: str) -> None:
    assert derive_approval_mode(tier) is ApprovalMode(mode)
    spec = make_spec(risk_tier=tier)
    assert (spec.risk_tier, spec.approval_mode) == (RiskTier(tier), ApprovalMode(mode))


def test_every_risk_tier_has_a_derived_mode() -> None:
    assert {derive_approval_mode(tier) for tier in RiskTier} == set(ApprovalMode)


def test_unknown_tier_has_no_derived_mode() -> None:
    with pytest.raises(ValueError) as caught:
        derive_approval_mode("medium")
    assert str(caught.value) == (
        "unknown risk tier 'medium'; use one of read_only, low_write, "
        "high_write, destructive"
    )


def test_missing_risk_tier_is_refused_rather_than_defaulted() -> None:
    values = {"name": "note", "title": "T", "description": "D"}
    with pytest.raises(ValidationError) as caught:
        ToolSpec(**values, input_model=NoteInput)  # type: ignore[arg-type]
    assert describe_validation_error(caught.value) == (
        "risk_tier: is required; declare one of read_only, low_write, high_write, "
        "destructive"
    )


def test_null_risk_tier_is_refused() -> None:
    assert spec_error(risk_tier=None) == (
        "risk_tier: is required; declare one of read_only, low_write, high_write, "
        "destructive"
    )


def test_unknown_risk_tier_is_refused() -> None:
    assert spec_error(risk_tier="medium") == (
        "risk_tier: unknown risk tier 'medium'; use one of read_only, low_write, "
        "high_write, destructive"
    )


@pytest.mark.parametrize(
    ("tier", "declared"),
    [
        ("read_only", "requires_approval"),
        ("read_only", "always_block"),
        ("low_write", "always_block"),
        ("high_write", "always_block"),
        ("destructive", "always_block"),
    ],
)
def test_approval_mode_may_be_declared_stricter(tier: str, declared: str) -> None:
    assert make_spec(risk_tier=tier, approval_mode=declared).approval_mode == declared


@pytest.mark.parametrize(
    ("tier", "declared", "derived"),
    [
        ("low_write", "auto", "requires_approval"),
        ("high_write", "auto", "requires_approval"),
        ("destructive", "auto", "always_block"),
        ("destructive", "requires_approval", "always_block"),
    ],
)
def test_approval_mode_may_not_be_declared_looser(
    tier: str, declared: str, derived: str
) -> None:
    assert spec_error(risk_tier=tier, approval_mode=declared) == (
        f"approval_mode: {declared!r} is looser than {derived!r}, which risk tier "
        f"{tier!r} requires; a tool may only tighten its mode"
    )


def test_unknown_approval_mode_is_refused() -> None:
    assert spec_error(approval_mode="sometimes") == (
        "approval_mode: unknown approval mode 'sometimes'; use one of auto, "
        "requires_approval, always_block"
    )


@pytest.mark.parametrize("name", ["Note", "2notes", "add-note", "", "n" * 65])
def test_tool_name_must_be_a_lowercase_identifier(name: str) -> None:
    assert spec_error(name=name) == (
        f"name: {name!r} is not a tool name; start with a lowercase letter and use "
        "only lowercase letters, digits and underscores (at most 64 characters)"
    )


def test_input_model_must_be_a_pydantic_model() -> None:
    assert spec_error(input_model=dict) == (
        "input_model: must be a pydantic BaseModel subclass"
    )


def test_unknown_spec_field_is_refused() -> None:
    assert spec_error(risk="low") == "risk: Extra inputs are not permitted"


def test_retry_window_must_not_be_inverted() -> None:
    assert spec_error(retry_base_seconds=60, retry_max_seconds=10) == (
        "retry_base_seconds must not exceed retry_max_seconds; lower the first or "
        "raise the second"
    )


def test_spec_is_frozen() -> None:
    spec = make_spec()

    with pytest.raises(ValidationError) as caught:
        spec.approval_mode = ApprovalMode.AUTO  # type: ignore[misc]

    assert caught.value.errors()[0]["type"] == "frozen_instance"
    assert spec.approval_mode is ApprovalMode.REQUIRES_APPROVAL


def test_input_json_schema_is_exposed() -> None:
    schema = make_spec().input_schema()

    assert schema["required"] == ["conversation_id", "content"]
    assert schema["properties"]["content"] == {
        "description": "The note.",
        "maxLength": 5000,
        "minLength": 1,
        "title": "Content",
        "type": "string",
    }


def test_spec_in_code_keeps_its_declared_version() -> None:
    assert make_spec(version="0.9").version == "0.9"
    assert make_spec().version is None


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    yield from PluginSite.activated(tmp_path / "site", monkeypatch)


def test_installed_tool_takes_the_version_of_its_distribution(
    site: PluginSite,
) -> None:
    site.install(
        PluginDist(
            name="acme-versioned",
            version="3.1.4",
            modules={"acme_versioned": tool_source("versioned")},
            tools={"versioned": "acme_versioned"},
        ),
        PluginDist(
            name="acme-stale",
            version="2.0.0",
            modules={"acme_stale": tool_source("stale", spec_fields="version='1.0',")},
            tools={"stale": "acme_stale"},
        ),
    )

    registry = Registry.discover()

    versions = {name: tool.spec.version for name, tool in registry.tools.items()}
    assert versions["versioned"] == "3.1.4"
    assert versions["stale"] == "2.0.0"
