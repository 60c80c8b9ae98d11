"""``cairnloop plugins`` and ``cairnloop tools`` run as real commands against
really installed plugins, broken ones among them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_dists import PluginDist, PluginSite, healthy_tool, run_cairnloop

BROKEN = PluginDist(
    name="acme-broken",
    version="0.4.2",
    modules={"acme_broken": "import acme_dependency_that_is_missing\n"},
    tools={"broken": "acme_broken"},
)
BROKEN_ERROR = (
    "importing 'acme_broken' failed with ModuleNotFoundError: No module named "
    "'acme_dependency_that_is_missing'. Install what it needs, fix it, or "
    "reinstall it."
)


OURS = ("broken", "echo", "internal_note")


def our_lines(output: str) -> list[str]:
    """The listing's lines about this suite's plugins, errors included."""
    kept: list[str] = []
    keep = False
    for line in output.splitlines():
        if not line.startswith(" "):
            keep = line.split(" ", 1)[0] in OURS
        if keep:
            kept.append(line)
    return kept


@pytest.fixture
def site(tmp_path: Path) -> PluginSite:
    site = PluginSite(tmp_path / "site")
    site.install(BROKEN, healthy_tool("echo"))
    return site


def test_plugins_json_shows_a_broken_plugin_as_failed_and_exits_0(
    site: PluginSite, tmp_path: Path
) -> None:
    done = run_cairnloop("plugins", "--json", env=site.env(), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    listed = {record["name"]: record for record in json.loads(done.stdout)}
    assert listed["broken"] == {
        "name": "broken",
        "kind": "tool",
        "distribution": "acme-broken",
        "version": "0.4.2",
        "status": "failed",
        "error": BROKEN_ERROR,
        "tools": [],
    }
    assert listed["echo"]["status"] == "ok"
    assert listed["internal_note"]["status"] == "ok"
    assert "Traceback" not in done.stderr
    assert f"Skipped plugin 'broken' from 'acme-broken': {BROKEN_ERROR}" in done.stderr


def test_plugins_lists_each_plugin_on_one_readable_line(
    site: PluginSite, tmp_path: Path
) -> None:
    done = run_cairnloop("plugins", env=site.env(), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert our_lines(done.stdout) == [
        "broken                   tool    failed    acme-broken 0.4.2",
        f"    {BROKEN_ERROR}",
        "echo                     tool    ok        echo-dist 1.0.0",
        "internal_note            tool    ok        cairnloop-internal-note 0.1.0",
    ]


def test_plugins_json_shows_blocked_plugins_as_disabled(
    site: PluginSite, tmp_path: Path
) -> None:
    env = site.env(CAIRNLOOP_PLUGINS_BLOCK="acme-broken,echo")

    done = run_cairnloop("plugins", "--json", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    listed = {
        r["name"]: (r["status"], r["error"])
        for r in json.loads(done.stdout)
        if r["name"] in OURS
    }
    assert listed == {
        "broken": ("disabled", "it is listed in CAIRNLOOP_PLUGINS_BLOCK"),
        "echo": ("disabled", "it is listed in CAIRNLOOP_PLUGINS_BLOCK"),
        "internal_note": ("ok", None),
    }
    assert "Skipped plugin 'broken'" not in done.stderr


def test_tools_json_lists_internal_note_with_its_tier_mode_and_schema(
    site: PluginSite, tmp_path: Path
) -> None:
    done = run_cairnloop("tools", "--json", env=site.env(), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    tools = {tool["name"]: tool for tool in json.loads(done.stdout)}
    assert {"echo", "internal_note"} <= set(tools)
    assert "broken" not in tools
    note = tools["internal_note"]
    assert note["title"] == "Add internal note"
    assert note["risk_tier"] == "low_write"
    assert note["approval_mode"] == "requires_approval"
    assert note["scopes"] == []
    assert note["transactional"] is True
    schema = note["input_schema"]
    assert schema["required"] == ["conversation_id", "content"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["content"]["maxLength"] == 5000
    assert schema["properties"]["content"]["minLength"] == 1


def test_tools_lists_each_tool_on_one_readable_line(
    site: PluginSite, tmp_path: Path
) -> None:
    done = run_cairnloop("tools", env=site.env(), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert our_lines(done.stdout) == [
        "echo                     low_write    requires_approval  Throwaway tool echo",
        "internal_note            low_write    requires_approval  Add internal note",
    ]


def test_tools_says_where_to_look_when_nothing_loaded(
    site: PluginSite, tmp_path: Path
) -> None:
    env = site.env(CAIRNLOOP_PLUGINS_ALLOW="nothing_by_this_name")

    text = run_cairnloop("tools", env=env, cwd=tmp_path)
    as_json = run_cairnloop("tools", "--json", env=env, cwd=tmp_path)

    assert (text.returncode, as_json.returncode) == (0, 0)
    assert text.stdout == "No tools are available; 'cairnloop plugins' shows why.\n"
    assert json.loads(as_json.stdout) == []
    assert "'nothing_by_this_name', which no installed plugin" in text.stderr
