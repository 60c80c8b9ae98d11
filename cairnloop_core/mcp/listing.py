"""How installed tools look to an MCP client: schema, annotations from the risk
tier, and Cairnloop's own details in each tool's ``_meta``."""

from __future__ import annotations

import logging
from typing import Any

import mcp.types as types
from pydantic import BaseModel, ConfigDict, Field

from cairnloop_core.registry import LoadedTool, Registry
from cairnloop_core.spec import ApprovalMode, RiskTier

__all__ = [
    "META_APPROVAL_MODE",
    "META_IDEMPOTENCY_KEY",
    "META_RISK_TIER",
    "META_SCOPES",
    "STATUS_TOOL",
    "StatusInput",
    "describe_tool",
    "list_tools",
    "status_tool",
]

logger = logging.getLogger(__name__)

STATUS_TOOL = "cairnloop_proposal_status"
META_RISK_TIER = "cairnloop/risk_tier"
META_APPROVAL_MODE = "cairnloop/approval_mode"
META_SCOPES = "cairnloop/scopes"
META_VERSION = "cairnloop/tool_version"
META_BUILT_IN = "cairnloop/built_in"
META_IDEMPOTENCY_KEY = "cairnloop/idempotency_key"

# readOnly, destructive, idempotent. Governed writes are not idempotent: the
# same arguments proposed again after the first call finished run again.
_HINTS = {
    RiskTier.READ_ONLY: (True, False, True),
    RiskTier.LOW_WRITE: (False, False, False),
    RiskTier.HIGH_WRITE: (False, True, False),
    RiskTier.DESTRUCTIVE: (False, True, False),
}

_NEXT_STEP = {
    ApprovalMode.AUTO: "Runs at once; the call returns its result.",
    ApprovalMode.REQUIRES_APPROVAL: (
        "Waits for an operator's approval; the call returns a proposal id to "
        f"follow with {STATUS_TOOL}."
    ),
    ApprovalMode.ALWAYS_BLOCK: "Always blocked; no call of it will ever run.",
}


class StatusInput(BaseModel):
    """Which proposal to report on."""

    model_config = ConfigDict(extra="forbid")

    proposal_id: int = Field(
        ge=1,
        description="The proposal id a previous tool call returned.",
    )


def annotations_for(tier: RiskTier, title: str) -> types.ToolAnnotations:
    """The MCP hints a risk tier implies."""
    read_only, destructive, idempotent = _HINTS[tier]
    return types.ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
    )


def describe_tool(loaded: LoadedTool, registry: Registry) -> types.Tool:
    """The MCP description of one installed tool.

    Raises whatever schema generation or the tool's scope hook raises; the
    caller decides what a broken tool means for the listing.
    """
    spec = loaded.spec
    schema = spec.input_schema()
    if schema.get("type") != "object":
        raise TypeError("its input schema is not a JSON object schema")
    meta: dict[str, Any] = {
        META_RISK_TIER: spec.risk_tier.value,
        META_APPROVAL_MODE: spec.approval_mode.value,
        META_SCOPES: sorted(registry.required_scopes(loaded)),
        META_VERSION: spec.version,
    }
    description = f"{spec.description}\n\n{_NEXT_STEP[spec.approval_mode]}"
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=description,
        input_schema=schema,
        annotations=annotations_for(spec.risk_tier, spec.title),
        _meta=meta,
    )


def status_tool() -> types.Tool:
    """The built-in, read-only tool that reports on a proposal."""
    title = "Proposal status"
    return types.Tool(
        name=STATUS_TOOL,
        title=title,
        description=(
            "Report the status of a proposal you made through this server, and "
            "its result once it has run. Use it to follow a call that waits "
            "for an operator's approval."
        ),
        input_schema=StatusInput.model_json_schema(),
        annotations=annotations_for(RiskTier.READ_ONLY, title),
        _meta={
            META_RISK_TIER: RiskTier.READ_ONLY.value,
            META_APPROVAL_MODE: ApprovalMode.AUTO.value,
            META_SCOPES: [],
            META_BUILT_IN: True,
        },
    )


def list_tools(registry: Registry) -> list[types.Tool]:
    """Every usable installed tool, then the built-in status tool.

    A tool that cannot be described (its schema or scope hook fails) is left
    out with a warning; the others are still listed.
    """
    listed = []
    for name, loaded in sorted(registry.tools.items()):
        if name == STATUS_TOOL:
            logger.warning(
                "Tool %r is not offered over MCP: the name is the built-in "
                "status tool's; rename the tool.",
                name,
                extra={"event": "mcp_tool_unlisted", "tool": name},
            )
            continue
        try:
            listed.append(describe_tool(loaded, registry))
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            logger.warning(
                "Tool %r is not offered over MCP: %s: %s. Fix the plugin or "
                "block it with CAIRNLOOP_PLUGINS_BLOCK.",
                name,
                type(exc).__name__,
                first_line,
                extra={"event": "mcp_tool_unlisted", "tool": name},
            )
    listed.append(status_tool())
    return listed
