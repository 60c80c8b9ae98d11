"""internal_note under real governance, driven through the core's testing
helpers: the installed plugin, a temporary SQLite file and the real executor."""

from __future__ import annotations

from cairnloop_core import Actor
from cairnloop_core.testing import GovernedHarness

AGENT = Actor("support-bot", "agent")
NOTE = {"conversation_id": "conv-1", "content": "Refund approved by finance."}


def test_an_approved_note_is_written_once_to_its_conversation(
    cairnloop_harness: GovernedHarness,
) -> None:
    cairnloop_harness.app.create_conversation("conv-1")

    proposal = cairnloop_harness.propose_and_run("internal_note", NOTE, actor=AGENT)
    later = cairnloop_harness.execute()

    assert proposal.status == "succeeded"
    assert later == []
    notes = cairnloop_harness.app.messages("conv-1")
    assert [(n["role"], n["content"], n["run_key"]) for n in notes] == [
        ("internal_note", "Refund approved by finance.", "cairnloop-proposal-1")
    ]
    assert proposal.result == {
        "message_id": notes[0]["id"],
        "conversation_id": "conv-1",
    }
    assert cairnloop_harness.trail(proposal.id) == ["proposed", "approved", "succeeded"]


def test_a_proposed_note_waits_for_an_operator_and_shows_a_preview(
    cairnloop_harness: GovernedHarness,
) -> None:
    cairnloop_harness.app.create_conversation("conv-1")

    proposal = cairnloop_harness.propose_and_run(
        "internal_note", NOTE, actor=AGENT, approver=None
    )

    assert proposal.status == "pending"
    assert proposal.preview == (
        "Adds a 4-word internal note to conversation 'conv-1', "
        "visible to operators only."
    )
    assert cairnloop_harness.app.messages("conv-1") == []


def test_a_note_for_a_missing_conversation_fails_with_a_readable_reason(
    cairnloop_harness: GovernedHarness,
) -> None:
    note = {"conversation_id": "conv-404", "content": "Anyone there?"}

    proposal = cairnloop_harness.propose_and_run("internal_note", note, actor=AGENT)

    assert proposal.status == "failed"
    assert proposal.reason == (
        "Conversation 'conv-404' does not exist; the note was not written."
    )
    assert cairnloop_harness.app.messages("conv-404") == []
    assert cairnloop_harness.trail(proposal.id) == ["proposed", "approved", "failed"]


def test_content_over_5000_characters_needs_input_and_writes_nothing(
    cairnloop_harness: GovernedHarness,
) -> None:
    cairnloop_harness.app.create_conversation("conv-1")
    note = {"conversation_id": "conv-1", "content": "x" * 5001}

    proposal = cairnloop_harness.propose_and_run("internal_note", note, actor=AGENT)

    assert proposal.status == "needs_input"
    assert proposal.errors == [
        {"field": "content", "reason": "String should have at most 5000 characters"}
    ]
    assert cairnloop_harness.app.messages("conv-1") == []
    assert cairnloop_harness.trail(proposal.id) == ["proposed"]


def test_the_system_actor_is_denied_because_no_policy_allows_it(
    cairnloop_harness: GovernedHarness,
) -> None:
    cairnloop_harness.app.create_conversation("conv-1")
    system = Actor("nightly-job", "system")

    proposal = cairnloop_harness.propose_and_run("internal_note", NOTE, actor=system)

    assert proposal.status == "policy_denied"
    assert proposal.reason == "no_policy_defined"
    assert cairnloop_harness.app.messages("conv-1") == []
