"""``cairnloop plugins`` and ``cairnloop tools``: what is installed and usable."""

from __future__ import annotations

from typing import Any

import click

from cairnloop_core.cli.common import CONTEXT_SETTINGS, State, echo_json

__all__ = ["plugins", "tool_description", "tools"]


def tool_description(registry: Any, name: str) -> dict[str, Any]:
    """A tool as the CLI contract lists it."""
    loaded = registry.get_tool(name)
    spec = loaded.spec
    try:
        scopes = sorted(registry.required_scopes(loaded))
    except Exception:
        scopes = None
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "risk_tier": spec.risk_tier.value,
        "approval_mode": spec.approval_mode.value,
        "scopes": scopes,
        "transactional": spec.transactional,
        "version": spec.version,
        "plugin": loaded.plugin_name,
        "input_schema": spec.input_schema(),
    }


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def plugins(state: State, as_json: bool) -> None:
    """List installed plugins and whether each loaded (ok, failed, disabled)."""
    records = [record.as_dict() for record in state.registry.records()]
    if as_json:
        echo_json(records)
        return
    if not records:
        click.echo("No Cairnloop plugins are installed.")
        return
    for record in records:
        origin = record["distribution"] or "registered in code"
        source = f"{origin} {record['version'] or ''}".strip()
        click.echo(
            f"{record['name']:<24} {record['kind']:<7} {record['status']:<9} {source}"
        )
        if record["error"]:
            click.echo(f"    {record['error']}")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def tools(state: State, as_json: bool) -> None:
    """List the tools that loaded, with their tier, approval mode and input."""
    registry = state.registry
    described = [tool_description(registry, name) for name in sorted(registry.tools)]
    if as_json:
        echo_json(described)
        return
    if not described:
        click.echo("No tools are available; 'cairnloop plugins' shows why.")
        return
    for tool in described:
        click.echo(
            f"{tool['name']:<24} {tool['risk_tier']:<12} {tool['approval_mode']:<18} "
            f"{tool['title']}"
        )
