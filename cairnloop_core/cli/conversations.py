"""``cairnloop conversation``: the support-thread store tools like internal_note
write to."""

from __future__ import annotations

import click

from cairnloop_core.cli.common import CONTEXT_SETTINGS, State, echo_json

__all__ = ["conversation"]


@click.group(context_settings=CONTEXT_SETTINGS)
def conversation() -> None:
    """Create and read conversations in Cairnloop's support-thread store."""


@conversation.command(context_settings=CONTEXT_SETTINGS)
@click.argument("conversation_id")
@click.option("--title", help="A short title for the conversation.")
@click.pass_obj
def create(state: State, conversation_id: str, title: str | None) -> None:
    """Create a conversation (nothing happens if it exists)."""
    state.app().create_conversation(conversation_id, title=title)
    click.echo(f"Conversation {conversation_id} is ready.")


@conversation.command(context_settings=CONTEXT_SETTINGS)
@click.argument("conversation_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def show(state: State, conversation_id: str, as_json: bool) -> None:
    """Show a conversation's messages, oldest first."""
    app = state.app()
    found = app.get_conversation(conversation_id)
    entries = app.messages(conversation_id)
    if as_json:
        echo_json({"conversation": found, "messages": entries})
        return
    click.echo(f"Conversation {conversation_id}: {found['title'] or 'untitled'}")
    if not entries:
        click.echo("  no messages yet")
    for message in entries:
        click.echo(f"  #{message['id']} [{message['role']}] {message['content']}")
