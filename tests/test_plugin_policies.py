"""How installed tool and policy plugins combine: scopes are unioned, only the
owner allows, any denial wins, and only the owner's run runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import PluginDist, PluginSite, tool_source

from cairnloop_core import Actor, Allow, Cairnloop, Deny, Registry, RunContext
from cairnloop_core.registry import LoadedTool

AGENT = Actor("bot-7", "agent")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    yield from PluginSite.activated(tmp_path / "site", monkeypatch)


def tool_dist(name: str, **parts: object) -> PluginDist:
    module = f"{name}_tool"
    return PluginDist(
        name=f"acme-{name}",
        modules={module: tool_source(name, **parts)},  # type: ignore[arg-type]
        tools={name: module},
    )


def policy_dist(name: str, source: str) -> PluginDist:
    module = f"{name}_policy"
    return PluginDist(
        name=f"acme-{name}", modules={module: source}, policies={name: module}
    )


def loaded(registry: Registry, name: str) -> LoadedTool:
    tool = registry.get_tool(name)
    assert tool is not None, [r.as_dict() for r in registry.records()]
    return tool


def record_status(registry: Registry, name: str) -> tuple[str, str | None]:
    (record,) = [r for r in registry.records() if r.name == name]
    return record.status, record.error


ALLOW_EVERYONE = """
from cairnloop_core import Allow, hookimpl

@hookimpl
def cairnloop_authorize(tool, actor, context):
    return Allow()
"""


def test_policy_plugin_cannot_allow_a_tool_whose_owner_abstains(
    site: PluginSite,
) -> None:
    site.install(
        tool_dist("guarded", authorize="return None"),
        policy_dist("permissive", ALLOW_EVERYONE),
    )
    registry = Registry.discover()

    verdict = registry.authorize(loaded(registry, "guarded"), AGENT, {})

    assert record_status(registry, "permissive") == ("ok", None)
    assert verdict == Deny("no_policy_defined")


def test_policy_plugin_cannot_allow_another_plugins_tool_when_proposed(
    site: PluginSite, sqlite_url: str
) -> None:
    site.install(
        tool_dist("guarded", authorize="return None"),
        policy_dist("permissive", ALLOW_EVERYONE),
    )

    with Cairnloop(sqlite_url, registry=Registry.discover()) as app:
        app.upgrade()
        result = app.propose("guarded", actor=AGENT, input={"text": "hello"})

    assert (result.outcome, result.status) == ("policy_denied", "policy_denied")
    assert result.reason == "no_policy_defined"


def test_policy_denial_wins_over_the_owners_allow(
    site: PluginSite, sqlite_url: str
) -> None:
    source = """
    from cairnloop_core import Deny, hookimpl

    @hookimpl
    def cairnloop_authorize(tool, actor, context):
        if actor.kind == "agent":
            return Deny("agents may not use this tool after hours")
        return None
    """
    site.install(tool_dist("guarded"), policy_dist("after_hours", source))
    registry = Registry.discover()

    with Cairnloop(sqlite_url, registry=registry) as app:
        app.upgrade()
        result = app.propose("guarded", actor=AGENT, input={"text": "hello"})
        by_operator = app.propose("guarded", actor="alice", input={"text": "hi"})

    assert result.outcome == "policy_denied"
    assert result.reason == "agents may not use this tool after hours"
    assert by_operator.outcome == "created"


def test_owners_denial_is_returned_with_its_reason(site: PluginSite) -> None:
    site.install(tool_dist("guarded", authorize="return Deny('closed for audit')"))
    registry = Registry.discover()

    verdict = registry.authorize(loaded(registry, "guarded"), AGENT, {})

    assert verdict == Deny("closed for audit")


def test_without_any_allow_the_call_is_denied_as_no_policy_defined(
    site: PluginSite,
) -> None:
    site.install(tool_dist("silent", authorize="return None"))
    registry = Registry.discover()

    verdict = registry.authorize(loaded(registry, "silent"), AGENT, {})

    assert verdict == Deny("no_policy_defined")


def test_owner_that_allows_with_no_policy_installed_allows(site: PluginSite) -> None:
    site.install(tool_dist("open"))
    registry = Registry.discover()

    assert registry.authorize(loaded(registry, "open"), AGENT, {}) == Allow()


def test_exception_in_the_owners_authorize_is_a_denial(
    site: PluginSite, caplog: pytest.LogCaptureFixture
) -> None:
    site.install(tool_dist("fragile", authorize="raise RuntimeError('db down')"))
    registry = Registry.discover()

    with caplog.at_level(logging.WARNING, logger="cairnloop_core.registry"):
        verdict = registry.authorize(loaded(registry, "fragile"), AGENT, {})

    assert verdict == Deny("the authorization check of plugin 'fragile' failed")
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["authorize_hook_failed"]


def test_exception_in_a_policy_authorize_is_a_denial(site: PluginSite) -> None:
    source = """
    from cairnloop_core import hookimpl

    @hookimpl
    def cairnloop_authorize(tool, actor, context):
        raise KeyError("missing roster")
    """
    site.install(tool_dist("guarded"), policy_dist("roster", source))
    registry = Registry.discover()

    verdict = registry.authorize(loaded(registry, "guarded"), AGENT, {})

    assert verdict == Deny("the authorization check of plugin 'roster' failed")


def test_scopes_of_the_tool_and_every_policy_are_unioned_but_not_other_tools(
    site: PluginSite, sqlite_url: str
) -> None:
    source = """
    from cairnloop_core import hookimpl

    @hookimpl
    def cairnloop_scope(tool):
        return ["audit:acknowledge"]
    """
    site.install(
        tool_dist("guarded", scopes=("notes:write",)),
        tool_dist("unrelated", scopes=("billing:refund",)),
        policy_dist("audited", source),
    )
    registry = Registry.discover()

    required = registry.required_scopes(loaded(registry, "guarded"))
    with Cairnloop(sqlite_url, registry=registry) as app:
        app.upgrade()
        short = app.propose(
            "guarded", actor=AGENT, input={"text": "x"}, scopes=["notes:write"]
        )
        full = app.propose(
            "guarded",
            actor=AGENT,
            input={"text": "x"},
            scopes=["notes:write", "audit:acknowledge"],
        )

    assert required == frozenset({"notes:write", "audit:acknowledge"})
    assert short.outcome == "scope_invalid"
    assert short.reason == "Missing scopes: audit:acknowledge"
    assert full.outcome == "created"


def run_context(proposal_id: int = 1) -> RunContext:
    return RunContext(
        proposal_id=proposal_id,
        idempotency_key=f"test-run-{proposal_id}",
        attempt=1,
        actor=AGENT,
    )


def test_run_is_called_only_on_the_owning_tool(site: PluginSite) -> None:
    other_wrapper = """
    WRAPPED = []

    @hookimpl(wrapper=True, specname="cairnloop_run")
    def trace_run(tool, input, actor, context):
        WRAPPED.append(tool.name)
        return (yield)
    """
    site.install(tool_dist("alpha"), tool_dist("beta", extra=other_wrapper))
    registry = Registry.discover()
    alpha = loaded(registry, "alpha")

    result = registry.run(
        alpha, alpha.spec.input_model(text="hi"), AGENT, run_context()
    )

    assert result == {"ran": "alpha", "text": "hi"}
    assert sys.modules["alpha_tool"].CALLS == ["alpha"]
    assert sys.modules["beta_tool"].CALLS == []
    assert sys.modules["beta_tool"].WRAPPED == []


WRAPPING_POLICY = """
from cairnloop_core import hookimpl

SEEN = []

@hookimpl(wrapper=True)
def cairnloop_run(tool, input, actor, context):
    SEEN.append(("before", tool.name, context.proposal_id))
    result = yield
    SEEN.append(("after", result))
    return result
"""


def test_policy_wrapper_wraps_the_owners_run_through_the_executor(
    site: PluginSite, sqlite_url: str
) -> None:
    site.install(
        tool_dist("lookup", tier="read_only"), policy_dist("timing", WRAPPING_POLICY)
    )

    with Cairnloop(sqlite_url, registry=Registry.discover()) as app:
        app.upgrade()
        proposed = app.propose("lookup", actor=AGENT, input={"text": "order 42"})
        outcomes = app.drain()
        final = app.get(proposed.proposal.id)

    assert proposed.status == "approved"
    assert [o.status for o in outcomes] == ["succeeded"]
    assert final.result == {"ran": "lookup", "text": "order 42"}
    seen = sys.modules["timing_policy"].SEEN
    assert seen == [
        ("before", "lookup", proposed.proposal.id),
        ("after", {"ran": "lookup", "text": "order 42"}),
    ]
    assert sys.modules["lookup_tool"].CALLS == ["lookup"]


def test_policy_plugin_that_would_replace_run_is_left_out(site: PluginSite) -> None:
    source = """
    from cairnloop_core import hookimpl

    @hookimpl(tryfirst=True)
    def cairnloop_run(tool, input, actor, context):
        return {"hijacked": True}
    """
    site.install(tool_dist("alpha"), policy_dist("hijack", source))
    registry = Registry.discover()
    alpha = loaded(registry, "alpha")

    result = registry.run(alpha, alpha.spec.input_model(text="x"), AGENT, run_context())

    assert record_status(registry, "hijack") == (
        "failed",
        "a policy plugin may only wrap cairnloop_run (@hookimpl(wrapper=True)), "
        "never replace a tool's run.",
    )
    assert result == {"ran": "alpha", "text": "x"}


def test_policy_plugin_that_declares_a_tool_spec_is_left_out(
    site: PluginSite,
) -> None:
    site.install(
        PluginDist(
            name="acme-confused",
            modules={"acme_confused": tool_source("confused")},
            policies={"confused": "acme_confused"},
        )
    )
    registry = Registry.discover()

    assert record_status(registry, "confused") == (
        "failed",
        "a policy plugin cannot declare a tool spec; register the tool under the "
        "'cairnloop.tools' entry point group instead.",
    )
    assert registry.get_tool("confused") is None


def test_policy_plugin_without_any_hook_is_left_out(site: PluginSite) -> None:
    site.install(policy_dist("empty", "RULES = []\n"))
    registry = Registry.discover()

    assert record_status(registry, "empty") == (
        "failed",
        "it implements no Cairnloop hook; mark its hook functions with @hookimpl "
        "from cairnloop_core.",
    )
