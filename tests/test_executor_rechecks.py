"""The executor checks every approved proposal again just before its run;
a failed check ends in ``invalidated`` with a readable reason and no run."""

from __future__ import annotations

import datetime as dt

from executor_support import (
    Apps,
    HostPolicy,
    InlineTool,
    approved,
    event_types,
    registry_with,
    tool_spec,
)
from pydantic import BaseModel, Field
from sqlalchemy import update

from cairnloop_core import Actor, Cairnloop, hookimpl
from cairnloop_core.inputs import hash_input
from cairnloop_core.schema import proposals, utcnow


def assert_invalidated(
    app: Cairnloop, proposal_id: int, reason: str, *, tampered: bool = False
) -> None:
    proposal = app.get(proposal_id)
    assert proposal.status.value == "invalidated"
    assert proposal.reason == reason
    assert proposal.attempts == 0
    assert event_types(app, proposal_id) == ["proposed", "approved", "invalidated"]
    last = app.events(proposal_id)[-1]
    assert (last.from_status, last.to_status, last.reason) == (
        "approved",
        "invalidated",
        reason,
    )
    problems = [str(p) for p in app.verify_audit()[1]]
    if tampered:
        assert problems == [
            f"proposal {proposal_id}, its event list: its input no longer matches "
            "its input hash; the input was changed after it was proposed"
        ]
    else:
        assert problems == []


def test_tool_uninstalled_since_approval_is_invalidated_and_never_run(
    apps: Apps,
) -> None:
    tool = InlineTool(tool_spec())
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    worker_side = apps.open(registry_with())
    outcome = worker_side.run_once()

    assert outcome is not None
    assert (outcome.status, outcome.event) == ("invalidated", "invalidated")
    assert tool.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "Tool 'ping' is not installed in the worker that claimed the proposal.",
    )


def test_scope_revoked_by_the_host_since_approval_invalidates(apps: Apps) -> None:
    tool = InlineTool(tool_spec(), scopes=["tickets:write"])
    host = HostPolicy(scopes={"tickets:write"})
    app = apps.open(registry_with(tool, host=host))
    proposal_id = approved(app, "ping", {"text": "hi"}, scopes=["tickets:write"])

    host.scopes = {"tickets:read"}
    app.drain()

    assert tool.calls == []
    assert_invalidated(
        app, proposal_id, "The actor no longer holds scopes: tickets:write."
    )


def test_without_a_host_hook_the_scopes_granted_at_proposal_are_used(
    apps: Apps,
) -> None:
    tool = InlineTool(tool_spec(), scopes=["tickets:write"])
    app = apps.open(registry_with(tool, host=HostPolicy(scopes=None)))
    proposal_id = approved(app, "ping", {"text": "hi"}, scopes=["tickets:write"])

    app.drain()

    assert app.get(proposal_id).status.value == "succeeded"
    assert [c.proposal_id for c in tool.calls] == [proposal_id]


class RaisingHost:
    """A host whose directory of grants cannot be reached."""

    @hookimpl
    def cairnloop_actor_scopes(self, actor: Actor) -> list[str]:
        raise ConnectionError("directory unreachable")


def test_host_scope_hook_that_raises_invalidates_instead_of_running(
    apps: Apps,
) -> None:
    tool = InlineTool(tool_spec())
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})

    apps.open(registry_with(tool, host=RaisingHost())).drain()

    assert tool.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "The current scopes of agent:support-bot could not be read.",
    )


def test_authorize_that_now_denies_invalidates(apps: Apps) -> None:
    tool = InlineTool(tool_spec())
    host = HostPolicy()
    app = apps.open(registry_with(tool, host=host))
    proposal_id = approved(app, "ping", {"text": "hi"})

    host.denial = "the account was frozen"
    app.drain()

    assert tool.calls == []
    assert_invalidated(
        app, proposal_id, "Authorization now denies the call: the account was frozen"
    )


def test_ttl_passed_before_the_run_invalidates(apps: Apps) -> None:
    tool = InlineTool(tool_spec())
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "hi"})
    with app.engine.begin() as connection:
        connection.execute(
            update(proposals)
            .where(proposals.c.id == proposal_id)
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )

    app.drain()

    assert tool.calls == []
    assert_invalidated(
        app, proposal_id, "The TTL passed before the proposal could run."
    )


def test_input_edited_in_the_database_after_approval_invalidates(
    apps: Apps,
) -> None:
    tool = InlineTool(tool_spec())
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "refund 10 EUR"})
    with app.engine.begin() as connection:
        connection.execute(
            update(proposals)
            .where(proposals.c.id == proposal_id)
            .values(input={"text": "refund 10000 EUR"})
        )

    app.drain()

    assert tool.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "The input differs from the input that was approved.",
        tampered=True,
    )


def test_input_and_its_hash_both_edited_are_caught_by_the_approval_event(
    apps: Apps,
) -> None:
    tool = InlineTool(tool_spec())
    app = apps.open(registry_with(tool))
    proposal_id = approved(app, "ping", {"text": "refund 10 EUR"})
    forged = {"text": "refund 10000 EUR"}
    with app.engine.begin() as connection:
        connection.execute(
            update(proposals)
            .where(proposals.c.id == proposal_id)
            .values(input=forged, input_hash=hash_input(forged))
        )

    app.drain()

    assert tool.calls == []
    proposal = app.get(proposal_id)
    assert proposal.status.value == "invalidated"
    assert proposal.reason == "The input differs from the input that was approved."


def test_tool_whose_tier_rose_since_approval_is_invalidated(apps: Apps) -> None:
    app = apps.open(registry_with(InlineTool(tool_spec())))
    proposal_id = approved(app, "ping", {"text": "hi"})

    riskier = InlineTool(tool_spec(risk_tier="high_write"))
    apps.open(registry_with(riskier)).drain()

    assert riskier.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "Tool 'ping' is now high_write, riskier than low_write when it was approved.",
    )


def test_tool_whose_approval_mode_tightened_since_approval_is_invalidated(
    apps: Apps,
) -> None:
    app = apps.open(registry_with(InlineTool(tool_spec())))
    proposal_id = approved(app, "ping", {"text": "hi"})

    blocked = InlineTool(tool_spec(approval_mode="always_block"))
    apps.open(registry_with(blocked)).drain()

    assert blocked.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "Tool 'ping' now needs always_block, stricter than requires_approval "
        "when it was approved.",
    )


class ShortPing(BaseModel):
    text: str = Field(min_length=1, max_length=3)


class PingWithChannel(BaseModel):
    text: str
    channel: str = "email"


def test_input_no_longer_valid_for_the_installed_tool_invalidates(
    apps: Apps,
) -> None:
    app = apps.open(registry_with(InlineTool(tool_spec())))
    proposal_id = approved(app, "ping", {"text": "hello"})

    stricter = InlineTool(tool_spec(input_model=ShortPing))
    apps.open(registry_with(stricter)).drain()

    assert stricter.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "The input is no longer valid for tool 'ping': "
        "text: String should have at most 3 characters",
    )


def test_input_read_differently_by_the_installed_tool_invalidates(
    apps: Apps,
) -> None:
    app = apps.open(registry_with(InlineTool(tool_spec())))
    proposal_id = approved(app, "ping", {"text": "hello"})

    widened = InlineTool(tool_spec(input_model=PingWithChannel))
    apps.open(registry_with(widened)).drain()

    assert widened.calls == []
    assert_invalidated(
        app,
        proposal_id,
        "The input no longer means what was approved: tool 'ping' now reads it "
        "differently.",
    )
