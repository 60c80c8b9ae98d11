"""The demo scenario: an agent proposes notes, an operator approves, the
executor runs, and the audit trail shows what happened."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cairnloop_core.actors import Actor, ActorKind
from cairnloop_core.app import Cairnloop
from cairnloop_core.errors import ConfigurationError

__all__ = ["run_demo"]


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


def run_demo(database_file: str, say: Callable[[str], None]) -> None:
    """Run the scenario on a fresh SQLite file, narrating through ``say``."""
    path = Path(database_file).expanduser().resolve()
    _fresh(path)
    with Cairnloop(f"sqlite:///{path}") as app:
        app.upgrade()
        say(f"Database: {path} (fresh SQLite file, schema created)")

        say("\n== Installed plugins")
        for record in app.registry.records():
            extra = f" - {record.error}" if record.error else ""
            say(f"  {record.name}: {record.status} ({record.distribution}){extra}")
        if app.registry.get_tool("internal_note") is None:
            raise ConfigurationError(
                "the demo needs the internal_note tool; install it with "
                "'pip install ./plugins/internal_note'."
            )

        app.create_conversation("conv-1001", title="Refund for order 1001")
        agent = Actor("support-bot", ActorKind.AGENT)
        operator = Actor("alice", ActorKind.OPERATOR)
        note = {
            "conversation_id": "conv-1001",
            "content": "Customer was charged twice; refund approved by billing.",
        }

        say("\n== The agent proposes three notes")
        first = app.propose("internal_note", actor=agent, input=note)
        assert first.proposal is not None
        say(f"  valid note      -> {first.outcome.value}, proposal {first.proposal.id}")
        bad = app.propose(
            "internal_note",
            actor=agent,
            input={"conversation_id": "conv-1001", "content": ""},
        )
        assert bad.proposal is not None
        problems = "; ".join(f"{e['field']}: {e['reason']}" for e in bad.errors)
        say(f"  empty note      -> {bad.outcome.value} ({problems})")
        again = app.propose("internal_note", actor=agent, input=note)
        assert again.proposal is not None
        say(
            f"  same note again -> {again.outcome.value} of proposal "
            f"{again.proposal.id}"
        )

        say("\n== Inbox")
        for waiting in app.inbox():
            say(f"  #{waiting.id} {waiting.tool} by {waiting.actor}: {waiting.preview}")

        say("\n== The operator approves")
        approved = app.approve(
            first.proposal.id, actor=operator, note="Matches the ticket."
        )
        say(f"  proposal {approved.id} is {approved.status.value}")

        say("\n== The executor re-checks and runs what is due")
        for outcome in app.drain():
            say(f"  proposal {outcome.proposal_id} -> {outcome.status}")
        say(f"  result: {json.dumps(app.get(first.proposal.id).result)}")

        say("\n== Conversation conv-1001")
        for message in app.messages("conv-1001"):
            say(f"  [{message['role']}] {message['content']}")

        say("\n== Audit trail")
        for proposal_id in (first.proposal.id, bad.proposal.id):
            proposal = app.get(proposal_id)
            say(f"  proposal {proposal.id} ({proposal.tool}) - {proposal.status.value}")
            for event in app.events(proposal_id):
                reason = f": {event.reason}" if event.reason else ""
                say(
                    f"    {event.seq}. {event.type:<10} "
                    f"{event.from_status or '-':>8} -> "
                    f"{event.to_status:<11} by {event.actor}{reason}"
                )

        checked, broken = app.verify_audit()
        verdict = "intact" if not broken else f"{len(broken)} problem(s)"
        say(f"\nAudit chain {verdict}: {checked} events verified.")
