"""The allow-list and block-list, from the environment or from code, choose
which installed plugins load; a plugin left out this way is never imported."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import PluginDist, PluginSite, healthy_tool, tool_source

from cairnloop_core import Registry


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    installed = PluginSite.activated(tmp_path / "site", monkeypatch)
    site = next(installed)
    site.install(healthy_tool("echo"), healthy_tool("shout"))
    yield site
    installed.close()


OURS = ("echo", "shout", "internal_note")


def statuses(registry: Registry) -> dict[str, tuple[str, str | None]]:
    """Status and error of this suite's plugins, whatever else is installed."""
    return {r.name: (r.status, r.error) for r in registry.records() if r.name in OURS}


def test_allow_list_from_the_environment_loads_only_the_named_plugins(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_ALLOW", " echo , ")

    registry = Registry.discover()

    assert set(registry.tools) == {"echo"}
    assert statuses(registry) == {
        "echo": ("ok", None),
        "shout": ("disabled", "it is not listed in CAIRNLOOP_PLUGINS_ALLOW"),
        "internal_note": ("disabled", "it is not listed in CAIRNLOOP_PLUGINS_ALLOW"),
    }


def test_block_list_from_the_environment_leaves_the_named_plugin_out(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "internal_note")

    registry = Registry.discover()

    assert {"echo", "shout"} <= set(registry.tools)
    assert "internal_note" not in registry.tools
    assert statuses(registry)["internal_note"] == (
        "disabled",
        "it is listed in CAIRNLOOP_PLUGINS_BLOCK",
    )


def test_blocking_one_distribution_resolves_a_duplicated_tool_name(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.install(
        healthy_tool("twin", distribution="acme-twin"),
        PluginDist(
            name="other-twin",
            modules={"other_twin": tool_source("twin")},
            tools={"twin": "other_twin"},
        ),
    )
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "Other_Twin")

    registry = Registry.discover()

    twins = sorted(
        (r.distribution, r.status) for r in registry.records() if r.name == "twin"
    )
    assert twins == [("acme-twin", "ok"), ("other-twin", "disabled")]
    loaded = registry.get_tool("twin")
    assert loaded is not None
    assert loaded.plugin.__name__ == "twin_plugin"  # type: ignore[attr-defined]


def test_block_list_wins_over_the_allow_list(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_ALLOW", "echo,shout")
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "shout")

    registry = Registry.discover()

    assert set(registry.tools) == {"echo"}
    assert statuses(registry)["shout"] == (
        "disabled",
        "it is listed in CAIRNLOOP_PLUGINS_BLOCK",
    )


def test_lists_given_in_code_replace_the_environment(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "echo")

    registry = Registry.discover(allow=["echo"], block=[])

    assert set(registry.tools) == {"echo"}
    assert statuses(registry)["shout"] == (
        "disabled",
        "it is not listed in the allow-list given in code",
    )


def test_empty_variables_mean_no_list_at_all(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_ALLOW", "  ")
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "")

    registry = Registry.discover()

    assert set(registry.tools) >= {"echo", "shout", "internal_note"}


def test_blocked_plugin_is_never_imported(
    site: PluginSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.install(
        PluginDist(
            name="acme-explosive",
            modules={"acme_explosive": "raise RuntimeError('imported')\n"},
            tools={"explosive": "acme_explosive"},
        )
    )
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "acme-explosive")

    registry = Registry.discover()

    (record,) = [r for r in registry.records() if r.name == "explosive"]
    assert (record.status, record.error) == (
        "disabled",
        "it is listed in CAIRNLOOP_PLUGINS_BLOCK",
    )


def test_list_entry_that_matches_nothing_is_logged(
    site: PluginSite,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CAIRNLOOP_PLUGINS_BLOCK", "ecco")

    with caplog.at_level(logging.WARNING, logger="cairnloop_core.registry"):
        registry = Registry.discover()

    assert {"echo", "shout", "internal_note"} <= set(registry.tools)
    unmatched = [
        r
        for r in caplog.records
        if getattr(r, "event", None) == "plugin_selection_unmatched"
    ]
    assert [r.getMessage() for r in unmatched] == [
        "The plugin allow-list or block-list names 'ecco', which no installed "
        "plugin or distribution matches"
    ]
