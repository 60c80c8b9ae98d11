"""The governed path from proposal to one written note, on both databases."""

from __future__ import annotations

from cairnloop_core import Actor, Cairnloop


def test_approved_note_is_written_exactly_once(app: Cairnloop) -> None:
    app.create_conversation("c-1")
    agent = Actor("bot", "agent")

    proposed = app.propose(
        "internal_note", actor=agent, input={"conversation_id": "c-1", "content": "hi"}
    )
    assert proposed.outcome == "created"
    assert proposed.status == "pending"

    app.approve(proposed.proposal.id, actor="alice")
    outcomes = app.drain()
    again = app.drain()

    assert [o.status for o in outcomes] == ["succeeded"]
    assert again == []
    notes = app.messages("c-1")
    assert [(m["role"], m["content"]) for m in notes] == [("internal_note", "hi")]
    assert [e.type for e in app.events(proposed.proposal.id)] == [
        "proposed",
        "approved",
        "succeeded",
    ]
    assert app.verify_audit()[1] == []
