"""Commands that propose, decide and read proposals."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from cairnloop_core.cli.common import (
    CONTEXT_SETTINGS,
    DURATION,
    EXIT_BAD_INPUT,
    EXIT_REFUSED,
    UNITS,
    State,
    echo_json,
    parse_when,
)

__all__ = ["approve", "defer", "inbox", "propose", "reject", "reopen", "show"]

OUTCOME_EXIT = {
    "created": 0,
    "duplicate": 0,
    "needs_input": EXIT_BAD_INPUT,
    "unsupported": EXIT_BAD_INPUT,
    "scope_invalid": EXIT_REFUSED,
    "policy_denied": EXIT_REFUSED,
    "blocked": EXIT_REFUSED,
}

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document."
)
actor_option = click.option(
    "--actor", required=True, help="Id of the operator deciding."
)


class WholeNumber(click.ParamType):
    """A whole number within bounds, refused in plain words otherwise."""

    name = "number"

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or not self.low <= number <= self.high:
            self.fail(
                f"{value!r} is not a whole number from {self.low} to {self.high}",
                param,
                ctx,
            )
        return number


class ProposalIdType(click.ParamType):
    """A proposal id: a positive whole number, refused readably otherwise."""

    name = "id"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is not a proposal id; give the number "
                    "'cairnloop inbox' shows",
                    param,
                    ctx,
                )
        if number < 1:
            self.fail(f"{number} is not a proposal id; ids start at 1", param, ctx)
        return number


PROPOSAL_ID = ProposalIdType()


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            param_hint=source,
        ) from None
    except (ValueError, RecursionError) as exc:
        # Numbers too long to convert, or arrays nested past the parser's depth.
        raise click.BadParameter(
            f"is not usable JSON ({type(exc).__name__})", param_hint=source
        ) from None


def _read_input(input_text: str | None, input_file: str | None) -> Any:
    if (input_text is None) == (input_file is None):
        raise click.UsageError(
            "give the tool's input with exactly one of --input or --input-file"
        )
    if input_text is not None:
        data = _load_json(input_text, "--input")
    else:
        assert input_file is not None
        try:
            text = (
                sys.stdin.read()
                if input_file == "-"
                else Path(input_file).read_text(encoding="utf-8")
            )
        except OSError as exc:
            raise click.BadParameter(
                f"cannot be read ({exc.strerror})", param_hint="--input-file"
            ) from None
        except UnicodeDecodeError:
            raise click.BadParameter(
                "cannot be read (it is not UTF-8 text)", param_hint="--input-file"
            ) from None
        data = _load_json(text, "--input-file")
    if not isinstance(data, dict):
        source = "--input" if input_text is not None else "--input-file"
        raise click.BadParameter("must be a JSON object", param_hint=source)
    return data


def _parse_ttl(value: str | None) -> dt.timedelta | None:
    from cairnloop_core.settings import MAX_TTL

    if value is None:
        return None
    match = DURATION.match(value.strip())
    if not match or float(match[1]) <= 0:
        raise click.BadParameter(
            "give a positive duration such as 90s, 30m, 48h or 7d", param_hint="--ttl"
        )
    seconds = float(match[1]) * UNITS[match[2]]
    if seconds > MAX_TTL.total_seconds():
        raise click.BadParameter(
            f"must be at most {MAX_TTL.days} days", param_hint="--ttl"
        )
    return dt.timedelta(seconds=seconds)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("tool")
@click.option("--actor", required=True, help="Id of the agent or operator proposing.")
@click.option(
    "--actor-kind",
    type=click.Choice(["agent", "operator", "system"]),
    default="agent",
    show_default=True,
    help="Who is proposing.",
)
@click.option(
    "--scope", "scopes", multiple=True, help="A scope the actor holds (repeatable)."
)
@click.option(
    "--input", "input_text", metavar="JSON", help="The tool's input as a JSON object."
)
@click.option(
    "--input-file", metavar="FILE", help="Read the input from FILE ('-' for stdin)."
)
@click.option(
    "--context", "context_text", metavar="JSON", help="Host context as a JSON object."
)
@click.option(
    "--idempotency-key", metavar="KEY", help="Dedupe key, e.g. the agent's call id."
)
@click.option(
    "--ttl", metavar="DURATION", help="How long it may wait, e.g. 2h (default 48h)."
)
@json_option
@click.pass_obj
def propose(
    state: State,
    tool: str,
    actor: str,
    actor_kind: str,
    scopes: tuple[str, ...],
    input_text: str | None,
    input_file: str | None,
    context_text: str | None,
    idempotency_key: str | None,
    ttl: str | None,
    as_json: bool,
) -> None:
    """Propose a call of TOOL; it runs once approved (at once for auto tools)."""
    from cairnloop_core.actors import Actor, ActorKind

    data = _read_input(input_text, input_file)
    context = _load_json(context_text, "--context") if context_text else None
    if context is not None and not isinstance(context, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--context")
    result = state.app().propose(
        tool,
        actor=Actor(actor, ActorKind(actor_kind)),
        input=data,
        scopes=list(scopes),
        context=context,
        idempotency_key=idempotency_key,
        ttl=_parse_ttl(ttl),
    )
    if as_json:
        echo_json(result.as_dict())
    if not result.refused:
        if not as_json:
            _print_created(result)
        return
    # A refusal is one line on stderr in both modes, so scripts reading
    # --json still see why the command failed.
    click.echo(_refusal_line(result), err=True)
    status = result.status or result.outcome.value
    sys.exit(OUTCOME_EXIT[status])


def _print_created(result: Any) -> None:
    proposal = result.proposal
    click.echo(
        f"Proposal {proposal.id}: {result.outcome.value}, "
        f"status {proposal.status.value}"
    )
    if proposal.preview:
        click.echo(f"  {proposal.preview}")


def _refusal_line(result: Any) -> str:
    """One line saying why a call was refused: the outcome and the reasons."""
    if result.proposal is None:
        return f"{result.outcome.value}: {result.reason}"
    proposal = result.proposal
    if result.errors:
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in result.errors)
    else:
        detail = result.reason or "no reason was recorded"
    return (
        f"Proposal {proposal.id}: {result.outcome.value}, "
        f"status {proposal.status.value}: {detail}"
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--limit",
    type=WholeNumber(1, 1000),
    default=100,
    show_default=True,
    help="Show at most this many.",
)
@json_option
@click.pass_obj
def inbox(state: State, limit: int, as_json: bool) -> None:
    """List proposals waiting for a decision."""
    waiting = state.app().inbox(limit=limit)
    if as_json:
        echo_json([p.as_dict(include_input=False) for p in waiting])
        return
    if not waiting:
        click.echo("Nothing is waiting for a decision.")
        return
    for p in waiting:
        click.echo(
            f"#{p.id:<6} {p.status.value:<9} {p.tool:<20} by {p.actor}  "
            f"expires {p.expires_at:%Y-%m-%d %H:%M}Z"
        )
        if p.preview:
            click.echo(f"         {p.preview}")


def _decision_done(proposal: Any, verb: str, as_json: bool) -> None:
    if as_json:
        echo_json(proposal.as_dict(include_input=False))
    else:
        click.echo(f"Proposal {proposal.id} {verb}; status {proposal.status.value}.")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("proposal_id", type=PROPOSAL_ID)
@actor_option
@click.option("--note", help="Why it was approved (optional).")
@json_option
@click.pass_obj
def approve(
    state: State, proposal_id: int, actor: str, note: str | None, as_json: bool
) -> None:
    """Approve a pending proposal so the executor runs it."""
    _decision_done(
        state.app().approve(proposal_id, actor=actor, note=note), "approved", as_json
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("proposal_id", type=PROPOSAL_ID)
@actor_option
@click.option("--reason", required=True, help="Why it is rejected.")
@json_option
@click.pass_obj
def reject(
    state: State, proposal_id: int, actor: str, reason: str, as_json: bool
) -> None:
    """Reject a pending or deferred proposal."""
    _decision_done(
        state.app().reject(proposal_id, actor=actor, reason=reason), "rejected", as_json
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("proposal_id", type=PROPOSAL_ID)
@actor_option
@click.option("--reason", required=True, help="Why it is set aside.")
@click.option(
    "--until", metavar="WHEN", help="Return it to pending then (ISO time or 2h)."
)
@json_option
@click.pass_obj
def defer(
    state: State,
    proposal_id: int,
    actor: str,
    reason: str,
    until: str | None,
    as_json: bool,
) -> None:
    """Set a pending proposal aside until later."""
    moment = parse_when(until, "--until") if until else None
    _decision_done(
        state.app().defer(proposal_id, actor=actor, reason=reason, until=moment),
        "deferred",
        as_json,
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("proposal_id", type=PROPOSAL_ID)
@actor_option
@json_option
@click.pass_obj
def reopen(state: State, proposal_id: int, actor: str, as_json: bool) -> None:
    """Return a deferred proposal to pending."""
    _decision_done(state.app().reopen(proposal_id, actor=actor), "reopened", as_json)


def shown_input(app: Any, proposal: Any) -> Any:
    """The proposal's input with secret fields masked, when the tool is known."""
    from pydantic import ValidationError

    from cairnloop_core.inputs import masked_input

    loaded = app.registry.get_tool(proposal.tool)
    if loaded is None:
        return None
    try:
        return masked_input(loaded.spec.input_model.model_validate(proposal.input))
    except ValidationError:
        return None


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("proposal_id", type=PROPOSAL_ID)
@json_option
@click.pass_obj
def show(state: State, proposal_id: int, as_json: bool) -> None:
    """Show a proposal and its audit trail."""
    app = state.app()
    proposal = app.get(proposal_id)
    trail = app.events(proposal_id)
    if as_json:
        data = proposal.as_dict(include_input=False)
        data["input"] = shown_input(app, proposal)
        data["events"] = [event.as_dict() for event in trail]
        echo_json(data)
        return
    print_proposal(proposal, trail)


def print_proposal(proposal: Any, trail: list[Any]) -> None:
    """The human view of one proposal and its events."""
    click.echo(
        f"Proposal {proposal.id}: {proposal.tool} ({proposal.risk_tier}, "
        f"{proposal.approval_mode}) by {proposal.actor} - {proposal.status.value}"
    )
    if proposal.preview:
        click.echo(f"  {proposal.preview}")
    if proposal.reason:
        click.echo(f"  reason: {proposal.reason}")
    for error in proposal.errors or []:
        click.echo(f"  {error['field']}: {error['reason']}")
    if proposal.result is not None:
        click.echo(f"  result: {json.dumps(proposal.result, default=str)}")
    for event in trail:
        moved = f"{event.from_status or '-'} -> {event.to_status or '-'}"
        detail = f"  ({event.reason})" if event.reason else ""
        attempt = f" attempt {event.attempt}" if event.attempt else ""
        click.echo(
            f"  {event.seq:>2}. {event.at:%H:%M:%S} {event.type:<15} {moved:<24} "
            f"{event.actor}{attempt}{detail}"
        )
