"""The tool spec: a tool's frozen, validated declaration, and its approval mode."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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

_TIERS = ", ".join(tier.value for tier in RiskTier)
_MODES = ", ".join(mode.value for mode in ApprovalMode)


def derive_approval_mode(tier: RiskTier | str) -> ApprovalMode:
    """Return the approval mode a risk tier demands.

    Raises ``ValueError`` for an unknown tier: there is no silent default.
    """
    try:
        return _DERIVED_MODE[RiskTier(tier)]
    except ValueError:
        raise ValueError(f"unknown risk tier {tier!r}; use one of {_TIERS}") from None


def _invalid(reason: str) -> PydanticCustomError:
    # The reason travels as context so braces in a user's value stay literal.
    return PydanticCustomError("tool_spec", "{reason}", {"reason": reason})


class ToolSpec(BaseModel):
    """Everything the core needs to know about one tool, frozen at load time.

    ``risk_tier`` is required. ``approval_mode`` defaults to the mode derived
    from it and may only be declared stricter than that. ``transactional``
    means the tool's ``run`` writes only through the session the executor
    hands it, so its effect commits together with the outcome. ``version``
    is set by the registry to the version of the distribution the tool came
    from; a spec registered in code may declare its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    risk_tier: RiskTier = Field(default=None, validate_default=True)
    approval_mode: ApprovalMode = Field(default=None, validate_default=True)
    input_model: type[BaseModel]
    transactional: bool = False
    max_attempts: int = Field(default=3, ge=1, le=100)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    retry_base_seconds: float = Field(default=1.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86400)
    version: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not TOOL_NAME_PATTERN.match(name):
            raise _invalid(
                f"{name!r} is not a tool name; start with a lowercase letter and "
                "use only lowercase letters, digits and underscores "
                "(at most 64 characters)"
            )
        return name

    @field_validator("risk_tier", mode="before")
    @classmethod
    def _check_tier(cls, tier: Any) -> RiskTier:
        # Fail closed: a tool that does not say how risky it is never loads.
        if tier is None:
            raise _invalid(f"is required; declare one of {_TIERS}")
        try:
            return RiskTier(tier)
        except ValueError:
            raise _invalid(f"unknown risk tier {tier!r}; use one of {_TIERS}") from None

    @field_validator("approval_mode", mode="before")
    @classmethod
    def _derive_mode(cls, declared: Any, info: ValidationInfo) -> ApprovalMode:
        tier = info.data.get("risk_tier")
        if declared is not None:
            try:
                declared = ApprovalMode(declared)
            except ValueError:
                raise _invalid(
                    f"unknown approval mode {declared!r}; use one of {_MODES}"
                ) from None
        if tier is None:
            # The tier is invalid and reported on its own; block meanwhile.
            return declared or ApprovalMode.ALWAYS_BLOCK

        derived = _DERIVED_MODE[tier]
        if declared is None:
            return derived
        if declared.strictness < derived.strictness:
            raise _invalid(
                f"{declared.value!r} is looser than {derived.value!r}, which risk "
                f"tier {tier.value!r} requires; a tool may only tighten its mode"
            )
        return declared

    @field_validator("input_model", mode="before")
    @classmethod
    def _check_input_model(cls, model: Any) -> type[BaseModel]:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise _invalid("must be a pydantic BaseModel subclass")
        return model

    @model_validator(mode="after")
    def _check_retry_window(self) -> ToolSpec:
        if self.retry_base_seconds > self.retry_max_seconds:
            raise _invalid(
                "retry_base_seconds must not exceed retry_max_seconds; "
                "lower the first or raise the second"
            )
        return self

    def input_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of the tool's input."""
        return self.input_model.model_json_schema()
