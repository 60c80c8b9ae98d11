"""The hooks a Cairnloop plugin implements, and the markers to declare them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from cairnloop_core.actors import Actor, Allow, Deny
from cairnloop_core.spec import ToolSpec

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["PROJECT_NAME", "RunContext", "hookimpl", "hookspec"]

PROJECT_NAME = "cairnloop"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class RunContext:
    """What the executor hands a tool's ``run`` besides the input.

    ``idempotency_key`` is the same for every attempt at one proposal: an
    external API that honours it sees one effect however often the run is
    retried. ``session`` is the open SQLAlchemy session of the claim
    transaction for transactional tools, and ``None`` otherwise.
    """

    proposal_id: int
    idempotency_key: str
    attempt: int
    actor: Actor
    context: Mapping[str, Any] = field(default_factory=dict)
    session: Session | None = None


@hookspec
def cairnloop_scope(tool: ToolSpec) -> Iterable[str] | None:
    """Return the scopes an actor must hold to call ``tool``.

    Called on the tool's own plugin and on every policy plugin; the results
    are unioned. Return ``None`` or an empty list to require nothing.
    """


@hookspec
def cairnloop_authorize(
    tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
) -> Allow | Deny | None:
    """Decide whether ``actor`` may call ``tool``.

    Return ``Allow()``, ``Deny(reason)`` or ``None`` to abstain. Only the
    tool's own plugin can allow; a policy plugin can only deny. Any denial
    wins, no allow at all means a denial with reason ``no_policy_defined``,
    and an exception counts as a denial. Called at propose time and again by
    the executor just before ``run``.
    """


@hookspec(firstresult=True)
def cairnloop_run(
    tool: ToolSpec, input: BaseModel, actor: Actor, context: RunContext
) -> Mapping[str, Any] | None:
    """Perform the tool's side effect and return a JSON-able result.

    Only the executor calls it, and only on the tool's own plugin. Policy
    plugins may wrap it (``@hookimpl(wrapper=True)``) for timing or tracing
    but never replace it. Raise ``RetryableToolError`` for a failure worth
    another attempt and ``PermanentToolError`` for one that is not.
    """


@hookspec(firstresult=True)
def cairnloop_preview(tool: ToolSpec, input: BaseModel) -> str | None:
    """Return a one-paragraph summary of what running ``tool`` would do.

    Called on the tool's own plugin only. Return ``None`` to use the
    readable fallback built from the input, with secret fields masked.
    """


@hookspec(firstresult=True)
def cairnloop_actor_scopes(actor: Actor) -> Iterable[str] | None:
    """Return the scopes ``actor`` holds *now*, or ``None`` if unknown.

    A host implements it so the executor re-checks current grants before a
    run; without it the scopes granted at propose time are used.
    """
