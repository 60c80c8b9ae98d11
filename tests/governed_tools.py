"""Small tools that exercise each governance gate, for tests in and out of process.

The same objects are registered in code by in-process tests and published
through a real ``*.dist-info`` (see ``governance_support.tool_site``) for the
CLI running in a subprocess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cairnloop_core import Actor, Allow, Deny, RunContext, ToolSpec, hookimpl


class TicketInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=80)
    priority: int = Field(ge=1, le=5)


class LookupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=40)


class ReadingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meter: str
    value: float


class Credentials(BaseModel):
    user: str
    password: str = Field(json_schema_extra={"secret": True})


class WebhookInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https://")
    token: SecretStr
    signing_key: str = Field(json_schema_extra={"secret": True})
    auth: Credentials | None = None


class GovernedTool:
    """One tool: its spec, the scopes it needs, its authorize verdict and run."""

    def __init__(
        self,
        spec: ToolSpec,
        *,
        scopes: tuple[str, ...] = (),
        verdict: Allow | Deny | None = Allow(),  # noqa: B008
        preview: str | None = None,
        preview_error: Exception | None = None,
    ) -> None:
        self.spec = spec
        self.scopes = scopes
        self.verdict = verdict
        self.preview = preview
        self.preview_error = preview_error

    @hookimpl
    def cairnloop_scope(self, tool: ToolSpec) -> list[str] | None:
        return list(self.scopes)

    @hookimpl
    def cairnloop_authorize(
        self, tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
    ) -> Allow | Deny | None:
        return self.verdict

    @hookimpl
    def cairnloop_preview(self, tool: ToolSpec, input: BaseModel) -> str | None:
        if self.preview_error is not None:
            raise self.preview_error
        return self.preview

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: BaseModel, actor: Actor, context: RunContext
    ) -> dict[str, Any]:
        return {"done": tool.name}


scoped_ticket = GovernedTool(
    ToolSpec(
        name="scoped_ticket",
        title="Open ticket",
        description="Open a support ticket; needs two scopes.",
        risk_tier="low_write",
        input_model=TicketInput,
    ),
    scopes=("tickets:write", "tickets:assign"),
    preview="Opens a ticket.",
)

closed_desk = GovernedTool(
    ToolSpec(
        name="closed_desk",
        title="Open ticket after hours",
        description="Open a ticket; its policy denies every call.",
        risk_tier="low_write",
        input_model=TicketInput,
    ),
    verdict=Deny("the help desk is closed outside office hours"),
)

purge_thread = GovernedTool(
    ToolSpec(
        name="purge_thread",
        title="Purge thread",
        description="Delete a conversation for good.",
        risk_tier="destructive",
        input_model=LookupInput,
    ),
)

frozen_refund = GovernedTool(
    ToolSpec(
        name="frozen_refund",
        title="Refund",
        description="A high_write tool its author declared always_block.",
        risk_tier="high_write",
        approval_mode="always_block",
        input_model=TicketInput,
    ),
)

sealed_vault = GovernedTool(
    ToolSpec(
        name="sealed_vault",
        title="Open vault",
        description="Destructive, scoped and denied: fails every gate it can.",
        risk_tier="destructive",
        input_model=TicketInput,
    ),
    scopes=("vault:open",),
    verdict=Deny("the vault is sealed"),
)

lookup_order = GovernedTool(
    ToolSpec(
        name="lookup_order",
        title="Look up order",
        description="Read an order; read_only, so approved at once.",
        risk_tier="read_only",
        input_model=LookupInput,
    ),
)

call_webhook = GovernedTool(
    ToolSpec(
        name="call_webhook",
        title="Call webhook",
        description="Post to a URL with credentials; offers no preview.",
        risk_tier="low_write",
        input_model=WebhookInput,
    ),
)

record_reading = GovernedTool(
    ToolSpec(
        name="record_reading",
        title="Record reading",
        description="Store a meter reading; its input holds a float.",
        risk_tier="low_write",
        input_model=ReadingInput,
    ),
)

ALL_TOOLS = {
    "scoped_ticket": scoped_ticket,
    "closed_desk": closed_desk,
    "purge_thread": purge_thread,
    "frozen_refund": frozen_refund,
    "sealed_vault": sealed_vault,
    "lookup_order": lookup_order,
    "call_webhook": call_webhook,
    "record_reading": record_reading,
}
