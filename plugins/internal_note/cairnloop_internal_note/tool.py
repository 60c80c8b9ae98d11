"""The internal_note tool's spec, input and hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, exists, insert, literal, select

from cairnloop_core import (
    Actor,
    ActorKind,
    Allow,
    PermanentToolError,
    RunContext,
    ToolSpec,
    hookimpl,
)
from cairnloop_core.schema import conversations, messages, utcnow

MAX_CONTENT = 5000


class InternalNoteInput(BaseModel):
    """A note only operators see, attached to one conversation."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    conversation_id: str = Field(
        min_length=1,
        max_length=128,
        description="The conversation the note is attached to.",
    )
    content: str = Field(
        min_length=1,
        max_length=MAX_CONTENT,
        description="The note's text, 1 to 5,000 characters.",
    )


spec = ToolSpec(
    name="internal_note",
    title="Add internal note",
    description=(
        "Append a note to a conversation's thread that only operators can see. "
        "It is never shown to the customer."
    ),
    risk_tier="low_write",
    input_model=InternalNoteInput,
    transactional=True,
)


@hookimpl
def cairnloop_scope(tool: ToolSpec) -> list[str]:
    return []


@hookimpl
def cairnloop_authorize(
    tool: ToolSpec, actor: Actor, context: Mapping[str, Any]
) -> Allow | None:
    if actor.kind in (ActorKind.OPERATOR, ActorKind.AGENT):
        return Allow()
    return None


@hookimpl
def cairnloop_preview(tool: ToolSpec, input: InternalNoteInput) -> str:
    words = len(input.content.split())
    return (
        f"Adds a {words}-word internal note to conversation "
        f"{input.conversation_id!r}, visible to operators only."
    )


# The note goes in only if its conversation exists and no note was written
# under the run key yet: one statement on the usual path. Built once.
_WRITE_NOTE = (
    insert(messages)
    .from_select(
        ["conversation_id", "role", "content", "run_key", "details", "created_at"],
        select(
            bindparam("conversation_id", type_=messages.c.conversation_id.type),
            literal("internal_note"),
            bindparam("content", type_=messages.c.content.type),
            bindparam("run_key", type_=messages.c.run_key.type),
            bindparam("details", type_=messages.c.details.type),
            bindparam("created_at", type_=messages.c.created_at.type),
        ).where(
            exists().where(conversations.c.id == bindparam("conversation_id")),
            ~exists().where(messages.c.run_key == bindparam("run_key")),
        ),
    )
    .returning(messages.c.id)
)


@hookimpl
def cairnloop_run(
    tool: ToolSpec, input: InternalNoteInput, actor: Actor, context: RunContext
) -> dict[str, Any]:
    session = context.session
    if session is None:
        raise PermanentToolError("internal_note needs the executor's session to write.")

    message_id = session.execute(
        _WRITE_NOTE,
        {
            "conversation_id": input.conversation_id,
            "content": input.content,
            "run_key": context.idempotency_key,
            "details": {
                "source": "cairnloop",
                "proposal_id": context.proposal_id,
                "author": str(actor),
            },
            "created_at": utcnow(),
        },
    ).scalar()
    if message_id is not None:
        return {"message_id": message_id, "conversation_id": input.conversation_id}

    existing = session.execute(
        select(messages.c.id).where(messages.c.run_key == context.idempotency_key)
    ).scalar()
    if existing is not None:
        return {"message_id": existing, "idempotent": True}
    raise PermanentToolError(
        f"Conversation {input.conversation_id!r} does not exist; "
        "the note was not written."
    )
