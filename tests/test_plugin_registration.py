"""Plugins a host registers in code: the same checks as installed ones, a
readable ``PluginLoadError`` when unusable, and a place in the listing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from cairnloop_core import Allow, PluginLoadError, Registry, ToolSpec, hookimpl


class EchoInput(BaseModel):
    text: str


class EchoTool:
    spec = ToolSpec(
        name="echo_in_code",
        title="Echo",
        description="Returns its input.",
        risk_tier="read_only",
        input_model=EchoInput,
        version="0.2.0",
    )

    @hookimpl
    def cairnloop_authorize(self, tool: ToolSpec, actor: Any, context: Any) -> Allow:
        return Allow()

    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: EchoInput, actor: Any, context: Any
    ) -> dict[str, str]:
        return {"text": input.text}


class NoRunTool:
    spec = EchoTool.spec.model_copy(update={"name": "no_run"})


class ReplacingPolicy:
    @hookimpl
    def cairnloop_run(
        self, tool: ToolSpec, input: Any, actor: Any, context: Any
    ) -> dict[str, str]:
        return {"replaced": "yes"}


def test_tool_registered_in_code_is_listed_as_such() -> None:
    registry = Registry()

    name = registry.register_tool(EchoTool())

    assert name == "echo_in_code"
    assert [r.as_dict() for r in registry.records()] == [
        {
            "name": "echo_in_code",
            "kind": "tool",
            "distribution": None,
            "version": "0.2.0",
            "status": "ok",
            "error": None,
            "tools": ["echo_in_code"],
        }
    ]


def test_unusable_tool_registered_in_code_raises_a_readable_error() -> None:
    registry = Registry()

    with pytest.raises(PluginLoadError) as caught:
        registry.register_tool(NoRunTool(), distribution="host-app")

    assert str(caught.value) == (
        "Plugin 'no_run' from 'host-app' was left out: it implements no "
        "cairnloop_run hook, so it could never run; add one marked with @hookimpl."
    )
    assert registry.records() == []
    assert registry.tools == {}


def test_second_tool_of_the_same_name_in_code_is_refused() -> None:
    registry = Registry()
    registry.register_tool(EchoTool())

    with pytest.raises(PluginLoadError) as caught:
        registry.register_tool(EchoTool())

    assert caught.value.reason == (
        "tool name 'echo_in_code' is already registered by plugin 'echo_in_code'; "
        "uninstall one or block it."
    )


def test_object_without_a_spec_is_named_by_its_type_not_its_repr() -> None:
    with pytest.raises(PluginLoadError) as caught:
        Registry().register_tool(object())

    assert str(caught.value) == (
        "Plugin 'object' was left out: it has no 'spec' attribute holding a "
        "cairnloop_core.ToolSpec; declare one at the top of the plugin module."
    )


def test_policy_registered_in_code_that_replaces_run_is_refused() -> None:
    registry = Registry()

    with pytest.raises(PluginLoadError) as caught:
        registry.register_policy(ReplacingPolicy(), name="replacer")

    assert caught.value.reason == (
        "a policy plugin may only wrap cairnloop_run (@hookimpl(wrapper=True)), "
        "never replace a tool's run."
    )
    assert not registry.plugin_manager.has_plugin("replacer")
