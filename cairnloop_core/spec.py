"""The tool spec: a tool's frozen, validated declaration, and its approval mode."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ApprovalMode", "RiskTier", "ToolSpec", "derive_approval_mode"]

TOOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class RiskTier(StrEnum):
    """How much harm a tool can do, declared by its author."""

    READ_ONLY = "read_only"
    LOW_WRITE = "low_write"
    HIGH_WRITE = "high_write"
    DESTRUCTIVE = "destructive"


class ApprovalMode(StrEnum):
    """Whether a person must approve a call before it runs."""

    AUTO = "auto"
    REQUIRES_APPROVAL = "requires_approval"
    ALWAYS_BLOCK = "always_block"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {
    ApprovalMode.AUTO: 0,
    ApprovalMode.REQUIRES_APPROVAL: 1,
    ApprovalMode.ALWAYS_BLOCK: 2,
}

_DERIVED_MODE = {
    RiskTier.READ_ONLY: ApprovalMode.AUTO,
    RiskTier.LOW_WRITE: ApprovalMode.REQUIRES_APPROVAL,
    RiskTier.HIGH_WRITE: ApprovalMode.REQUIRES_APPROVAL,
    RiskTier.DESTRUCTIVE: ApprovalMode.ALWAYS_BLOCK,
}


def derive_approval_mode(tier: RiskTier | str) -> ApprovalMode:
    """Return the approval mode a risk tier demands.

    Raises ``ValueError`` for an unknown tier: there is no silent default.
    """
    try:
        return _DERIVED_MODE[RiskTier(tier)]
    except ValueError:
        known = ", ".join(t.value for t in RiskTier)
        raise ValueError(f"unknown risk tier {tier!r}; use one of {known}") from None


class ToolSpec(BaseModel):
    """Everything the core needs to know about one tool, frozen at load time.

    ``approval_mode`` defaults to the mode derived from ``risk_tier`` and may
    only be declared stricter than that. ``transactional`` means the tool's
    ``run`` writes only through the session the executor hands it, so its
    effect commits together with the outcome. ``version`` is filled in by the
    registry from the distribution the tool came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    risk_tier: RiskTier
    approval_mode: ApprovalMode = ApprovalMode.ALWAYS_BLOCK
    input_model: type[BaseModel]
    transactional: bool = False
    max_attempts: int = Field(default=3, ge=1, le=100)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    retry_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    version: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_mode(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "risk_tier" not in data or data["risk_tier"] is None:
            raise ValueError(
                "risk_tier is required; declare how much harm the tool can do"
            )
        derived = derive_approval_mode(data["risk_tier"])
        declared = data.get("approval_mode")
        if declared is None:
            return {**data, "approval_mode": derived}
        declared = ApprovalMode(declared)
        if declared.strictness < derived.strictness:
            raise ValueError(
                f"approval_mode {declared.value!r} is looser than {derived.value!r}, "
                f"which risk tier {RiskTier(data['risk_tier']).value!r} requires; "
                "a tool may only tighten its mode"
            )
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not TOOL_NAME_PATTERN.match(name):
            raise ValueError(
                "must start with a lowercase letter and hold only lowercase "
                "letters, digits and underscores (at most 64 characters)"
            )
        return name

    @field_validator("input_model")
    @classmethod
    def _check_input_model(cls, model: Any) -> type[BaseModel]:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ValueError("must be a pydantic BaseModel subclass")
        return model

    def input_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of the tool's input."""
        return self.input_model.model_json_schema()
