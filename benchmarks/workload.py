"""The governed work every measurement uses: internal notes proposed by an agent
and approved by an operator, through the Cairnloop facade."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from benchmarks.places import BenchError
from cairnloop_core import Actor, ActorKind, Cairnloop, Registry

__all__ = [
    "AGENT",
    "CONVERSATION",
    "OPERATOR",
    "TOOL",
    "approve_all",
    "note_input",
    "open_app",
    "propose_notes",
]

TOOL = "internal_note"
CONVERSATION = "bench-conversation"
AGENT = Actor("bench-agent", ActorKind.AGENT)
OPERATOR = Actor("bench-operator", ActorKind.OPERATOR)


def open_app(
    url: str | None = None, *, engine: Engine | None = None, prepare: bool = True
) -> Cairnloop:
    """A facade on ``url`` (or ``engine``) with the installed plugins.

    With ``prepare`` the schema is upgraded and the conversation the notes
    go to is created. Raises ``BenchError`` when internal_note is missing.
    """
    registry = Registry.discover(allow=None, block=())
    if registry.get_tool(TOOL) is None:
        raise BenchError(
            "the internal_note plugin is not installed in this environment; "
            "run '.venv/bin/pip install -e plugins/internal_note'."
        )
    app = Cairnloop(url, engine=engine, registry=registry)
    if prepare:
        app.upgrade()
        app.create_conversation(CONVERSATION, "Benchmark thread")
    return app


def note_input(index: int, tag: str) -> dict[str, Any]:
    """A distinct note, so that no proposal is a duplicate of another."""
    return {
        "conversation_id": CONVERSATION,
        "content": f"Benchmark note {tag}-{index}: customer asked for a callback.",
    }


def propose_notes(app: Cairnloop, count: int, tag: str | None = None) -> list[int]:
    """Propose ``count`` notes as the agent; return the pending proposal ids."""
    tag = tag or uuid.uuid4().hex[:8]
    ids = []
    for index in range(count):
        result = app.propose(TOOL, actor=AGENT, input=note_input(index, tag))
        if result.outcome != "created" or result.proposal is None:
            raise BenchError(
                f"proposing a note answered {result.outcome} ({result.reason}); "
                "the benchmark expects every proposal to be created."
            )
        ids.append(result.proposal.id)
    return ids


def approve_all(app: Cairnloop, ids: list[int]) -> None:
    for proposal_id in ids:
        app.approve(proposal_id, actor=OPERATOR)
