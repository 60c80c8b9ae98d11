"""``tools/list``: every installed tool with its schema, the hints its risk
tier implies and Cairnloop's details, and no broken tool breaking the list."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_support import stdio_server, write_plugin
from mcp_tools import all_test_tools, connected, plugin, registry_with
from pydantic import BaseModel

from cairnloop_core import Actor, Allow, Cairnloop, ToolSpec

AGENT = Actor("bot", "agent")


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Cairnloop]:
    with Cairnloop(sqlite_url, registry=registry_with(*all_test_tools())) as app:
        app.upgrade()
        yield app


def _listed(app: Cairnloop) -> dict[str, Any]:
    async def listing() -> Any:
        async with connected(app, AGENT) as client:
            return await client.list_tools()

    return {tool.name: tool for tool in anyio.run(listing).tools}


def test_each_tool_is_listed_with_title_description_and_schema(
    app: Cairnloop,
) -> None:
    tools = _listed(app)

    assert list(tools) == [
        "busy_lookup",
        "close_ticket",
        "echo",
        "escalate_ticket",
        "internal_note",
        "order_lookup",
        "wipe_ticket",
        "cairnloop_proposal_status",
    ]
    echo = tools["echo"]
    assert echo.title == "Echo text"
    assert echo.description == (
        "Repeat a short text in capitals.\n\nRuns at once; the call returns its result."
    )
    assert echo.input_schema == {
        "additionalProperties": False,
        "description": "Text to repeat back.",
        "properties": {
            "text": {
                "description": "What to repeat.",
                "maxLength": 20,
                "minLength": 1,
                "title": "Text",
                "type": "string",
            },
            "style": {
                "default": "upper",
                "description": "How to write it.",
                "enum": ["upper", "title"],
                "title": "Style",
                "type": "string",
            },
        },
        "required": ["text"],
        "title": "EchoInput",
        "type": "object",
    }
    note = tools["internal_note"]
    assert note.input_schema["required"] == ["conversation_id", "content"]
    assert note.input_schema["properties"]["content"]["maxLength"] == 5000
    assert note.description.endswith(
        "Waits for an operator's approval; the call returns a proposal id to "
        "follow with cairnloop_proposal_status."
    )
    assert tools["wipe_ticket"].description.endswith(
        "Always blocked; no call of it will ever run."
    )


def test_annotations_and_meta_follow_the_risk_tier(app: Cairnloop) -> None:
    tools = _listed(app)

    def hints(name: str) -> tuple[Any, ...]:
        a = tools[name].annotations
        return (a.read_only_hint, a.destructive_hint, a.idempotent_hint)

    def meta(name: str) -> tuple[Any, ...]:
        m = tools[name].meta
        return (
            m["cairnloop/risk_tier"],
            m["cairnloop/approval_mode"],
            m["cairnloop/scopes"],
        )

    assert hints("echo") == (True, False, True)
    assert hints("internal_note") == (False, False, False)
    assert hints("escalate_ticket") == (False, True, False)
    assert hints("wipe_ticket") == (False, True, False)
    assert hints("cairnloop_proposal_status") == (True, False, True)
    assert meta("echo") == ("read_only", "auto", [])
    assert meta("internal_note") == ("low_write", "requires_approval", [])
    assert meta("close_ticket") == ("low_write", "requires_approval", ["tickets:write"])
    assert meta("escalate_ticket") == ("high_write", "requires_approval", [])
    assert meta("wipe_ticket") == ("destructive", "always_block", [])
    assert meta("cairnloop_proposal_status") == ("read_only", "auto", [])
    assert tools["cairnloop_proposal_status"].meta["cairnloop/built_in"] is True
    assert tools["internal_note"].meta["cairnloop/tool_version"] == "0.1.0"
    assert tools["echo"].annotations.title == "Echo text"


class _CallbackInput(BaseModel):
    on_done: Callable[[], None]


class _NoInput(BaseModel):
    pass


def _failing_scope(tool: ToolSpec) -> list[str]:
    raise RuntimeError("the scope service is down")


def _allow(tool: ToolSpec, actor: Actor, context: Mapping[str, Any]) -> Allow:
    return Allow()


def test_a_tool_that_cannot_be_described_is_left_out_and_the_rest_listed(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = registry_with(
        plugin(
            ToolSpec(
                name="callback",
                title="Callback",
                description="Takes a Python callable, which JSON cannot express.",
                risk_tier="low_write",
                input_model=_CallbackInput,
            )
        ),
        plugin(
            ToolSpec(
                name="scoped",
                title="Scoped",
                description="Its scope hook fails.",
                risk_tier="low_write",
                input_model=_NoInput,
            ),
            scope=_failing_scope,
            authorize=_allow,
        ),
        plugin(
            ToolSpec(
                name="cairnloop_proposal_status",
                title="Impostor",
                description="Claims the built-in tool's name.",
                risk_tier="read_only",
                input_model=_NoInput,
            )
        ),
    )
    caplog.set_level(logging.WARNING, logger="cairnloop_core.mcp.listing")

    with Cairnloop(sqlite_url, registry=registry) as app:
        tools = _listed(app)

    assert list(tools) == ["internal_note", "cairnloop_proposal_status"]
    assert tools["cairnloop_proposal_status"].title == "Proposal status"
    unlisted = [r for r in caplog.records if r.event == "mcp_tool_unlisted"]
    assert [r.getMessage() for r in unlisted] == [
        "Tool 'cairnloop_proposal_status' is not offered over MCP: the name is "
        "the built-in status tool's; rename the tool.",
        "Tool 'callback' is not offered over MCP: PydanticInvalidForJsonSchema: "
        "Cannot generate a JsonSchema for core_schema.CallableSchema. Fix the "
        "plugin or block it with CAIRNLOOP_PLUGINS_BLOCK.",
        "Tool 'scoped' is not offered over MCP: RuntimeError: the scope service "
        "is down. Fix the plugin or block it with CAIRNLOOP_PLUGINS_BLOCK.",
    ]


def test_a_cursor_is_refused_because_every_tool_fits_one_page(
    app: Cairnloop,
) -> None:
    async def page_two() -> MCPError:
        async with connected(app, AGENT) as client:
            with pytest.raises(MCPError) as refused:
                await client.list_tools(cursor="page-2")
            return refused.value

    error = anyio.run(page_two)

    assert (error.code, error.message) == (
        -32602,
        "Unknown cursor; this server lists every tool on one page, so call "
        "tools/list without a cursor.",
    )


BROKEN_PLUGIN = """
from typing import Callable

from pydantic import BaseModel

from cairnloop_core import ToolSpec, hookimpl


class Input(BaseModel):
    on_done: Callable[[], None]


spec = ToolSpec(
    name="broken_schema",
    title="Broken schema",
    description="Its input cannot be written as JSON Schema.",
    risk_tier="low_write",
    input_model=Input,
)


@hookimpl
def cairnloop_run(tool, input, actor, context):
    return None
"""


def test_an_installed_plugin_that_breaks_is_left_out_over_stdio(
    sqlite_url: str, tmp_path: Path
) -> None:
    with Cairnloop(sqlite_url) as app:
        app.upgrade()
    env = write_plugin(
        tmp_path / "site", "cl_broken_schema", BROKEN_PLUGIN, ["broken_schema"]
    )
    log = tmp_path / "server.log"
    server = stdio_server(sqlite_url, "--actor", "bot", env=env)

    async def listing() -> list[str]:
        with log.open("w") as errlog:
            async with Client(stdio_client(server, errlog=errlog)) as client:
                return [tool.name for tool in (await client.list_tools()).tools]

    names = anyio.run(listing)

    assert names == ["internal_note", "cairnloop_proposal_status"]
    assert (
        "WARNING cairnloop_core.mcp.listing: Tool 'broken_schema' is not offered "
        "over MCP: PydanticInvalidForJsonSchema: Cannot generate a JsonSchema for "
        "core_schema.CallableSchema. Fix the plugin or block it with "
        "CAIRNLOOP_PLUGINS_BLOCK.\n"
    ) in log.read_text()
