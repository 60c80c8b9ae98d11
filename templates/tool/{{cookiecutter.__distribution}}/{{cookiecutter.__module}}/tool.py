"""The {{ cookiecutter.__tool }} tool's spec, input model and hook implementations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairnloop_core import (
    Actor,
    ActorKind,
    Allow,
    Deny,
    RunContext,
    ToolSpec,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict, Field


class {{ cookiecutter.__input_class }}(BaseModel):
    """What one call needs. Replace these example fields with the tool's own."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    target: str = Field(
        min_length=1,
        max_length=200,
        description="The record the tool acts on, for example an order id.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1000,
        description="Why the call is made; the operator who decides reads it.",
    )


spec = ToolSpec(
    name="{{ cookiecutter.__tool }}",
    title={{ cookiecutter.tool_title | trim | literal }},
    description={{ cookiecutter.description | trim | literal }},
    risk_tier="{{ cookiecutter.risk_tier }}",
    input_model={{ cookiecutter.__input_class }},
    # True only if run() writes solely through context.session, the executor's
    # open transaction: the write then commits exactly once with the outcome.
    transactional=False,
)

{% if cookiecutter.risk_tier == "read_only" -%}
# read_only: calls run at once without approval, so operators and agents may
# both make them.
ALLOWED_KINDS = frozenset({ActorKind.OPERATOR, ActorKind.AGENT})
ALLOWED_TEXT = "operators and agents"
{%- elif cookiecutter.risk_tier == "low_write" -%}
# low_write: every call waits for an operator's approval, so agents may propose
# it as well as operators.
ALLOWED_KINDS = frozenset({ActorKind.OPERATOR, ActorKind.AGENT})
ALLOWED_TEXT = "operators and agents"
{%- elif cookiecutter.risk_tier == "high_write" -%}
# high_write: every call waits for approval, and only operators may propose it;
# an agent's call is refused before anyone is asked. Add ActorKind.AGENT here
# if agents should propose it too.
ALLOWED_KINDS = frozenset({ActorKind.OPERATOR})
ALLOWED_TEXT = "operators"
{%- else -%}
# destructive: the core blocks every call whatever this hook answers. Operators
# are allowed so that their calls end as 'blocked', the true reason, while
# agents are refused as 'policy_denied'. A destructive tool never runs; to run
# it, its tier must be lowered on purpose.
ALLOWED_KINDS = frozenset({ActorKind.OPERATOR})
ALLOWED_TEXT = "operators"
{%- endif %}


@hookimpl
def cairnloop_scope(tool: ToolSpec) -> list[str]:
    """The scopes an actor must hold to call the tool; none by default."""
    return []


@hookimpl
def cairnloop_authorize(
    tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
) -> Allow | Deny:
    """Allow the kinds of actor the risk tier suits; refuse others with a reason."""
    if actor.kind in ALLOWED_KINDS:
        return Allow()
    return Deny(f"{tool.name} may be proposed by {ALLOWED_TEXT} only, not {actor}.")


@hookimpl
def cairnloop_preview(
    tool: ToolSpec,
    input: {{ cookiecutter.__input_class }},
) -> str:
    """The sentence an operator reads before deciding."""
    return f"{tool.title} on {input.target!r}: {input.reason}"


@hookimpl
def cairnloop_run(
    tool: ToolSpec,
    input: {{ cookiecutter.__input_class }},
    actor: Actor,
    context: RunContext,
) -> dict[str, Any]:
    """Do the work; only the executor calls this, after every check passed again.

    Replace the body with the real side effect and return what happened as
    JSON-able data. context.idempotency_key is the same on every attempt at
    one proposal: hand it to an API that honours such keys so a retry after a
    crash does not act twice. Raise RetryableToolError for a failure worth
    another attempt and PermanentToolError for one that is not.
    """
    return {
        "target": input.target,
        "performed_for": str(actor),
        "idempotency_key": context.idempotency_key,
    }
