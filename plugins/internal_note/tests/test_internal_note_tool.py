"""internal_note end to end on SQLite and PostgreSQL: one message per approved
proposal, idempotent by run key, readable failures, preview and authorize."""

from __future__ import annotations

import cairnloop_internal_note.tool as note_tool
import pytest
from sqlalchemy.orm import Session

from cairnloop_core import (
    Actor,
    Allow,
    Cairnloop,
    Deny,
    PermanentToolError,
    RunContext,
)
from cairnloop_core.registry import LoadedTool

AGENT = Actor("support-bot", "agent")
OPERATOR = Actor("alice", "operator")


def internal_note(app: Cairnloop) -> LoadedTool:
    loaded = app.registry.get_tool("internal_note")
    assert loaded is not None
    return loaded


def approved_and_run(app: Cairnloop, conversation_id: str, content: str) -> int:
    proposed = app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": conversation_id, "content": content},
    )
    assert (proposed.outcome, proposed.status) == ("created", "pending")
    assert proposed.proposal is not None
    app.approve(proposed.proposal.id, actor=OPERATOR)
    app.drain()
    return proposed.proposal.id


def test_spec_declares_low_write_requiring_approval_and_no_scopes(
    note_app: Cairnloop,
) -> None:
    loaded = internal_note(note_app)

    assert loaded.spec.risk_tier == "low_write"
    assert loaded.spec.approval_mode == "requires_approval"
    assert loaded.spec.transactional is True
    assert loaded.spec.version == "0.1.0"
    assert note_app.registry.required_scopes(loaded) == frozenset()


def test_approved_note_is_appended_as_one_internal_note_message(
    note_app: Cairnloop,
) -> None:
    note_app.create_conversation("conv-1")

    proposal_id = approved_and_run(note_app, "conv-1", "Refund approved by finance.")

    proposal = note_app.get(proposal_id)
    (message,) = note_app.messages("conv-1")
    assert proposal.status == "succeeded"
    assert proposal.result == {"message_id": message["id"], "conversation_id": "conv-1"}
    assert message["role"] == "internal_note"
    assert message["content"] == "Refund approved by finance."
    assert message["run_key"] == f"cairnloop-proposal-{proposal_id}"
    assert message["details"] == {
        "source": "cairnloop",
        "proposal_id": proposal_id,
        "author": "agent:support-bot",
    }


def test_rerun_with_the_same_run_key_writes_nothing_more(note_app: Cairnloop) -> None:
    note_app.create_conversation("conv-1")
    proposal_id = approved_and_run(note_app, "conv-1", "First and only.")
    (written,) = note_app.messages("conv-1")
    loaded = internal_note(note_app)
    model = loaded.spec.input_model(conversation_id="conv-1", content="First and only.")

    with Session(note_app.engine) as session:
        again = note_app.registry.run(
            loaded,
            model,
            AGENT,
            RunContext(
                proposal_id=proposal_id,
                idempotency_key=f"cairnloop-proposal-{proposal_id}",
                attempt=2,
                actor=AGENT,
                session=session,
            ),
        )
        session.commit()

    assert again == {"message_id": written["id"], "idempotent": True}
    assert note_app.messages("conv-1") == [written]


def test_note_for_a_missing_conversation_fails_permanently_with_a_reason(
    note_app: Cairnloop,
) -> None:
    proposal_id = approved_and_run(note_app, "conv-gone", "Nobody will read this.")

    proposal = note_app.get(proposal_id)
    assert proposal.status == "failed"
    assert proposal.attempts == 1
    assert proposal.reason == (
        "Conversation 'conv-gone' does not exist; the note was not written."
    )
    assert note_app.messages("conv-gone") == []
    assert [e.type for e in note_app.events(proposal_id)][-1] == "failed"


def test_proposal_carries_the_preview_sentence(note_app: Cairnloop) -> None:
    proposed = note_app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "conv-7", "content": "  Customer asked twice.  "},
    )

    assert proposed.proposal is not None
    assert proposed.proposal.preview == (
        "Adds a 3-word internal note to conversation 'conv-7', visible to "
        "operators only."
    )


def test_authorize_allows_operators_and_agents_and_abstains_for_the_system(
    note_app: Cairnloop,
) -> None:
    loaded = internal_note(note_app)
    system = Actor("nightly-job", "system")

    own_answers = [
        note_tool.cairnloop_authorize(tool=loaded.spec, actor=actor, context={})
        for actor in (OPERATOR, AGENT, system)
    ]
    combined = note_app.registry.authorize(loaded, system, {})
    proposed = note_app.propose(
        "internal_note",
        actor=system,
        input={"conversation_id": "conv-1", "content": "From a job."},
    )

    assert own_answers == [Allow(), Allow(), None]
    assert combined == Deny("no_policy_defined")
    assert (proposed.outcome, proposed.reason) == ("policy_denied", "no_policy_defined")


def test_content_longer_than_5000_characters_needs_input(note_app: Cairnloop) -> None:
    proposed = note_app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "conv-1", "content": "x" * 5001},
    )

    assert proposed.outcome == "needs_input"
    assert proposed.errors == [
        {"field": "content", "reason": "String should have at most 5000 characters"}
    ]


def test_blank_content_and_missing_conversation_need_input(
    note_app: Cairnloop,
) -> None:
    proposed = note_app.propose("internal_note", actor=AGENT, input={"content": "   "})

    assert proposed.outcome == "needs_input"
    assert proposed.errors == [
        {"field": "conversation_id", "reason": "Field required"},
        {"field": "content", "reason": "String should have at least 1 character"},
    ]


def test_run_without_the_executors_session_is_a_permanent_error(
    note_app: Cairnloop,
) -> None:
    loaded = internal_note(note_app)
    model = loaded.spec.input_model(conversation_id="conv-1", content="hi")
    context = RunContext(proposal_id=1, idempotency_key="k", attempt=1, actor=AGENT)

    with pytest.raises(PermanentToolError) as caught:
        note_tool.cairnloop_run(
            tool=loaded.spec, input=model, actor=AGENT, context=context
        )

    assert str(caught.value) == "internal_note needs the executor's session to write."
