"""Tiny tools, one per risk tier and failure, registered in code for the MCP
tests, and an in-process MCP client on a facade that has them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from mcp import Client
from pydantic import BaseModel, ConfigDict, Field

from cairnloop_core import (
    Actor,
    ActorKind,
    Allow,
    Cairnloop,
    Deny,
    PermanentToolError,
    Registry,
    RetryableToolError,
    RunContext,
    ToolSpec,
    hookimpl,
)
from cairnloop_core.mcp.calls import Caller
from cairnloop_core.mcp.server import build_server


class EchoInput(BaseModel):
    """Text to repeat back."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20, description="What to repeat.")
    style: Literal["upper", "title"] = Field(
        default="upper", description="How to write it."
    )


class AllowEveryone:
    """A tool plugin whose authorize hook allows every actor."""

    @hookimpl
    def cairnloop_authorize(
        self, tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
    ) -> Allow:
        return Allow()


class EchoTool(AllowEveryone):
    """read_only, so auto: runs at once."""

    spec = ToolSpec(
        name="echo",
        title="Echo text",
        description="Repeat a short text in capitals.",
        risk_tier="read_only",
        input_model=EchoInput,
    )

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: EchoInput, actor: Actor, context: RunContext
    ) -> dict[str, Any]:
        text = input.text.upper() if input.style == "upper" else input.text.title()
        return {"text": text, "by": str(actor)}


class LookupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, description="The order to look up.")


class FailingLookupTool(AllowEveryone):
    """read_only, and its run always fails for good."""

    spec = ToolSpec(
        name="order_lookup",
        title="Look up an order",
        description="Read an order from the shop.",
        risk_tier="read_only",
        input_model=LookupInput,
    )

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: LookupInput, actor: Actor, context: RunContext
    ) -> dict[str, Any]:
        raise PermanentToolError(f"The shop has no order {input.order_id!r}.")


class BusyLookupTool(FailingLookupTool):
    """read_only, and its upstream asks to come back in an hour."""

    spec = FailingLookupTool.spec.model_copy(update={"name": "busy_lookup"})

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: LookupInput, actor: Actor, context: RunContext
    ) -> dict[str, Any]:
        raise RetryableToolError("The shop is busy.", retry_after=3600)


class TicketInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(min_length=1, max_length=40, description="The ticket.")


def plugin(spec: ToolSpec, **hooks: Callable[..., Any]) -> object:
    """A tool plugin for ``spec``; ``hooks`` maps hook names without the
    ``cairnloop_`` prefix to functions. Its run returns the input's fields."""

    def run(tool: ToolSpec, input: Any, actor: Actor, context: RunContext) -> Any:
        return input.model_dump(mode="json")

    namespace: dict[str, Any] = {"spec": spec}
    for hook_name, function in {"run": run, **hooks}.items():
        namespace[f"cairnloop_{hook_name}"] = staticmethod(hookimpl(function))
    return type(f"{spec.name}_plugin", (), namespace)()


def _tool(name: str, tier: str, **hooks: Callable[..., Any]) -> object:
    """A ticket tool named ``name`` at ``tier`` with the given hook functions."""
    spec = ToolSpec(
        name=name,
        title=name.replace("_", " ").capitalize(),
        description=f"The {name} test tool.",
        risk_tier=tier,
        input_model=TicketInput,
    )
    return plugin(spec, **hooks)


def _allow(tool: ToolSpec, actor: Actor, context: Mapping[str, Any]) -> Allow:
    return Allow()


def _operators_only(
    tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
) -> Allow | Deny:
    if actor.kind is ActorKind.OPERATOR:
        return Allow()
    return Deny("only operators may escalate tickets")


def _needs_ticket_scope(tool: ToolSpec) -> list[str]:
    return ["tickets:write"]


def wipe_tool() -> object:
    return _tool("wipe_ticket", "destructive", authorize=_allow)


def escalate_tool() -> object:
    return _tool("escalate_ticket", "high_write", authorize=_operators_only)


def close_tool() -> object:
    return _tool(
        "close_ticket", "low_write", authorize=_allow, scope=_needs_ticket_scope
    )


def registry_with(*plugins: object) -> Registry:
    """The installed plugins (internal_note) plus ``plugins`` registered in code."""
    registry = Registry.discover(allow=None, block=())
    for plugin in plugins:
        registry.register_tool(plugin)
    return registry


def all_test_tools() -> list[object]:
    return [
        EchoTool(),
        FailingLookupTool(),
        BusyLookupTool(),
        wipe_tool(),
        escalate_tool(),
        close_tool(),
    ]


@asynccontextmanager
async def connected(
    app: Cairnloop, actor: Actor, scopes: tuple[str, ...] = ()
) -> AsyncIterator[Client]:
    """The official MCP client connected in process to a server on ``app``."""
    caller = Caller(actor, scopes, "stdio")
    async with Client(build_server(app, lambda _ctx: caller)) as client:
        yield client
