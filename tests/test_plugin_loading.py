"""Loading installed plugins in isolation: each broken plugin is reported with
its distribution, what is wrong and what to do, and every other one loads."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import PluginDist, PluginSite, healthy_tool, tool_source

from cairnloop_core import Registry

NEIGHBOURS = {"echo", "internal_note"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    yield from PluginSite.activated(tmp_path / "site", monkeypatch)


def discover_beside_a_healthy_tool(site: PluginSite, *dists: PluginDist) -> Registry:
    site.install(healthy_tool("echo"), *dists)
    return Registry.discover()


def only_record(registry: Registry, name: str) -> dict[str, Any]:
    found = [r.as_dict() for r in registry.records() if r.name == name]
    assert len(found) == 1, found
    return found[0]


def assert_neighbours_loaded(registry: Registry) -> None:
    statuses = {r.name: r.status for r in registry.records() if r.name in NEIGHBOURS}
    assert statuses == {"echo": "ok", "internal_note": "ok"}
    assert set(registry.tools) >= NEIGHBOURS


def failed_tool(name: str, distribution: str, error: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "tool",
        "distribution": distribution,
        "version": "1.0.0",
        "status": "failed",
        "error": error,
        "tools": [],
    }


def test_healthy_tool_loads_with_its_distribution_and_version(
    site: PluginSite,
) -> None:
    site.install(
        PluginDist(
            name="Acme-Echo",
            version="2.3.4",
            modules={"acme_echo": tool_source("echo")},
            tools={"echo": "acme_echo"},
        )
    )

    registry = Registry.discover()

    assert only_record(registry, "echo") == {
        "name": "echo",
        "kind": "tool",
        "distribution": "Acme-Echo",
        "version": "2.3.4",
        "status": "ok",
        "error": None,
        "tools": ["echo"],
    }
    loaded = registry.get_tool("echo")
    assert loaded is not None
    assert loaded.spec.version == "2.3.4"
    assert loaded.plugin_name == "echo"


def test_plugin_that_fails_to_import_is_reported_and_the_others_load(
    site: PluginSite,
) -> None:
    broken = PluginDist(
        name="acme-broken",
        modules={"acme_broken": "import acme_dependency_that_is_missing\n"},
        tools={"broken": "acme_broken"},
    )

    registry = discover_beside_a_healthy_tool(site, broken)

    assert only_record(registry, "broken") == failed_tool(
        "broken",
        "acme-broken",
        "importing 'acme_broken' failed with ModuleNotFoundError: No module "
        "named 'acme_dependency_that_is_missing'. Install what it needs, fix it, "
        "or reinstall it.",
    )
    assert registry.get_tool("broken") is None
    assert_neighbours_loaded(registry)


def test_plugin_that_exits_while_importing_does_not_end_discovery(
    site: PluginSite,
) -> None:
    exiting = PluginDist(
        name="acme-exits",
        modules={"acme_exits": "raise SystemExit(3)\n"},
        tools={"exits": "acme_exits"},
    )

    registry = discover_beside_a_healthy_tool(site, exiting)

    assert only_record(registry, "exits")["error"] == (
        "importing 'acme_exits' failed with SystemExit: 3. Install what it needs, "
        "fix it, or reinstall it."
    )
    assert_neighbours_loaded(registry)


@pytest.mark.parametrize(
    ("tool", "source", "problem"),
    [
        (
            "untiered",
            tool_source("untiered", tier=None),
            "risk_tier: is required; declare one of read_only, low_write, "
            "high_write, destructive",
        ),
        (
            "unknown_tier",
            tool_source("unknown_tier", tier="medium"),
            "risk_tier: unknown risk tier 'medium'; use one of read_only, "
            "low_write, high_write, destructive",
        ),
        (
            "loose",
            tool_source("loose", spec_fields="approval_mode='auto',"),
            "approval_mode: 'auto' is looser than 'requires_approval', which risk "
            "tier 'low_write' requires; a tool may only tighten its mode",
        ),
        (
            "badly_named",
            tool_source("Badly-Named"),
            "name: 'Badly-Named' is not a tool name; start with a lowercase letter "
            "and use only lowercase letters, digits and underscores "
            "(at most 64 characters)",
        ),
    ],
)
def test_plugin_with_an_invalid_spec_is_reported_and_the_others_load(
    site: PluginSite, tool: str, source: str, problem: str
) -> None:
    module = f"acme_{tool}"
    bad = PluginDist(
        name=f"acme-{tool}", modules={module: source}, tools={tool: module}
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, tool) == failed_tool(
        tool,
        f"acme-{tool}",
        f"its tool spec is invalid: {problem}. Fix the ToolSpec in {module!r}.",
    )
    assert_neighbours_loaded(registry)


def test_hook_with_an_argument_pluggy_rejects_is_reported_and_the_others_load(
    site: PluginSite,
) -> None:
    extra = """
    @hookimpl
    def cairnloop_preview(tool, inputs):
        return "never shown"
    """
    bad = PluginDist(
        name="acme-misargued",
        modules={"acme_misargued": tool_source("misargued", extra=extra)},
        tools={"misargued": "acme_misargued"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "misargued") == failed_tool(
        "misargued",
        "acme-misargued",
        "its cairnloop_preview hook takes 'inputs', which the hook does not pass; "
        "name its arguments from: tool, input.",
    )
    assert not registry.plugin_manager.has_plugin("misargued")
    assert_neighbours_loaded(registry)


def test_wrapper_that_does_not_yield_is_reported(site: PluginSite) -> None:
    source = """
    from cairnloop_core import hookimpl

    @hookimpl(wrapper=True)
    def cairnloop_run(tool, input, actor, context):
        return None
    """
    bad = PluginDist(
        name="acme-flat-wrapper",
        modules={"acme_flat_wrapper": source},
        policies={"flat_wrapper": "acme_flat_wrapper"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    record = only_record(registry, "flat_wrapper")
    assert (record["kind"], record["status"]) == ("policy", "failed")
    assert record["error"] == (
        "its cairnloop_run hook is marked as a wrapper but does not yield; make it "
        "a generator that yields once."
    )
    assert_neighbours_loaded(registry)


def test_misspelled_hook_is_reported_with_the_hook_it_resembles(
    site: PluginSite,
) -> None:
    extra = """
    @hookimpl
    def cairnloop_authorise(tool, actor, context):
        return Allow()
    """
    bad = PluginDist(
        name="acme-misspelled",
        modules={"acme_misspelled": tool_source("misspelled", extra=extra)},
        tools={"misspelled": "acme_misspelled"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "misspelled") == failed_tool(
        "misspelled",
        "acme-misspelled",
        "it implements 'cairnloop_authorise', which is not a Cairnloop hook. "
        "Did you mean 'cairnloop_authorize'? Rename it or remove the @hookimpl "
        "marker.",
    )
    assert not registry.plugin_manager.has_plugin("misspelled")
    assert_neighbours_loaded(registry)


def test_unknown_hook_unlike_any_other_is_reported_without_a_guess(
    site: PluginSite,
) -> None:
    extra = """
    @hookimpl
    def cairnloop_frobnicate(tool):
        return None
    """
    bad = PluginDist(
        name="acme-frobnicate",
        modules={"acme_frobnicate": tool_source("frobnicate", extra=extra)},
        tools={"frobnicate": "acme_frobnicate"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "frobnicate")["error"] == (
        "it implements 'cairnloop_frobnicate', which is not a Cairnloop hook. "
        "Rename it or remove the @hookimpl marker."
    )
    assert_neighbours_loaded(registry)


def test_tool_without_a_run_hook_is_reported_and_the_others_load(
    site: PluginSite,
) -> None:
    bad = PluginDist(
        name="acme-idle",
        modules={"acme_idle": tool_source("idle", run=None)},
        tools={"idle": "acme_idle"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "idle") == failed_tool(
        "idle",
        "acme-idle",
        "it implements no cairnloop_run hook, so it could never run; add one "
        "marked with @hookimpl.",
    )
    assert not registry.plugin_manager.has_plugin("idle")
    assert_neighbours_loaded(registry)


def test_plugin_without_a_spec_is_reported(site: PluginSite) -> None:
    bad = PluginDist(
        name="acme-specless",
        modules={"acme_specless": "VALUE = 1\n"},
        tools={"specless": "acme_specless"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "specless")["error"] == (
        "it has no 'spec' attribute holding a cairnloop_core.ToolSpec; declare "
        "one at the top of the plugin module."
    )
    assert_neighbours_loaded(registry)


def test_entry_point_named_unlike_its_spec_is_reported_and_the_others_load(
    site: PluginSite,
) -> None:
    bad = PluginDist(
        name="acme-notes",
        modules={"acme_notes": tool_source("note")},
        tools={"notes": "acme_notes"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "notes") == failed_tool(
        "notes",
        "acme-notes",
        "its entry point is named 'notes' but its spec names the tool 'note'; "
        "make the two the same.",
    )
    assert registry.get_tool("note") is None
    assert_neighbours_loaded(registry)


def test_tool_name_provided_twice_leaves_out_both_and_says_so(
    site: PluginSite,
) -> None:
    first = PluginDist(
        name="acme-twin",
        modules={"acme_twin": tool_source("twin")},
        tools={"twin": "acme_twin"},
    )
    second = PluginDist(
        name="other-twin",
        modules={"other_twin": tool_source("twin")},
        tools={"twin": "other_twin"},
    )

    registry = discover_beside_a_healthy_tool(site, first, second)

    twins = [r.as_dict() for r in registry.records() if r.name == "twin"]
    advice = (
        "so both were left out. Uninstall all but one, or put the distributions "
        "to skip in CAIRNLOOP_PLUGINS_BLOCK."
    )
    assert twins == [
        failed_tool(
            "twin",
            "acme-twin",
            "the tool name 'twin' is also used by the tool plugin from "
            f"'other-twin', {advice}",
        ),
        failed_tool(
            "twin",
            "other-twin",
            "the tool name 'twin' is also used by the tool plugin from "
            f"'acme-twin', {advice}",
        ),
    ]
    assert registry.get_tool("twin") is None
    assert_neighbours_loaded(registry)


def test_tool_and_policy_sharing_a_name_are_both_left_out(site: PluginSite) -> None:
    tool = PluginDist(
        name="acme-shared",
        modules={"acme_shared": tool_source("shared")},
        tools={"shared": "acme_shared"},
    )
    policy = PluginDist(
        name="acme-shared-policy",
        modules={"acme_shared_policy": "from cairnloop_core import hookimpl\n"},
        policies={"shared": "acme_shared_policy"},
    )

    registry = discover_beside_a_healthy_tool(site, tool, policy)

    statuses = [(r.kind, r.status) for r in registry.records() if r.name == "shared"]
    assert sorted(statuses) == [("policy", "failed"), ("tool", "failed")]
    assert registry.get_tool("shared") is None
    assert_neighbours_loaded(registry)


def test_distribution_with_unparsable_entry_points_is_reported_and_others_load(
    site: PluginSite,
) -> None:
    garbled = PluginDist(
        name="acme-garbled",
        modules={},
        entry_points_text="[cairnloop.tools]\nthis line names no object\n",
    )

    registry = discover_beside_a_healthy_tool(site, garbled)

    assert only_record(registry, "acme-garbled") == failed_tool(
        "acme-garbled",
        "acme-garbled",
        "its entry_points.txt cannot be parsed; each line under a [section] must "
        "read 'name = module:object'. Reinstall the distribution or fix its entry "
        "points.",
    )
    assert_neighbours_loaded(registry)


def test_every_broken_plugin_at_once_still_lets_the_healthy_ones_load(
    site: PluginSite,
) -> None:
    broken = [
        PluginDist(
            name="acme-a",
            modules={"acme_a": "import acme_missing_module\n"},
            tools={"a_tool": "acme_a"},
        ),
        PluginDist(
            name="acme-b",
            modules={"acme_b": tool_source("b_tool", tier=None)},
            tools={"b_tool": "acme_b"},
        ),
        PluginDist(
            name="acme-c",
            modules={"acme_c": tool_source("c_tool", run=None)},
            tools={"c_tool": "acme_c"},
        ),
    ]

    registry = discover_beside_a_healthy_tool(site, *broken)

    statuses = {r.name: r.status for r in registry.records()}
    assert {statuses[name] for name in ("a_tool", "b_tool", "c_tool")} == {"failed"}
    assert_neighbours_loaded(registry)


def test_skipped_plugin_is_logged_with_a_stable_event(
    site: PluginSite, caplog: pytest.LogCaptureFixture
) -> None:
    broken = PluginDist(
        name="acme-logged",
        modules={"acme_logged": "import acme_missing_module\n"},
        tools={"logged": "acme_logged"},
    )

    with caplog.at_level(logging.WARNING, logger="cairnloop_core.registry"):
        discover_beside_a_healthy_tool(site, broken)

    skipped = [
        r for r in caplog.records if getattr(r, "event", None) == "plugin_skipped"
    ]
    assert [(r.plugin, r.distribution) for r in skipped] == [  # type: ignore[attr-defined]
        ("logged", "acme-logged")
    ]
    assert skipped[0].levelno == logging.WARNING


def test_hook_function_without_its_marker_is_reported(site: PluginSite) -> None:
    extra = """
    def cairnloop_preview(tool, input):
        return "written, but never marked"
    """
    bad = PluginDist(
        name="acme-unmarked",
        modules={"acme_unmarked": tool_source("unmarked", extra=extra)},
        tools={"unmarked": "acme_unmarked"},
    )

    registry = discover_beside_a_healthy_tool(site, bad)

    assert only_record(registry, "unmarked")["error"] == (
        "its cairnloop_preview has no @hookimpl marker, so it would never be "
        "called; mark it with @hookimpl from cairnloop_core."
    )
    assert_neighbours_loaded(registry)
