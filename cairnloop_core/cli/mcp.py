"""The ``cairnloop mcp`` commands: the MCP server and the HTTP bearer tokens."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from cairnloop_core.cli.common import CONTEXT_SETTINGS, State, echo_json, parse_when

if TYPE_CHECKING:
    from cairnloop_core.mcp.tokens import TokenStore

__all__ = ["mcp"]

ACTOR_KINDS = click.Choice(["agent", "operator"])
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document."
)


@click.group(context_settings=CONTEXT_SETTINGS)
def mcp() -> None:
    """Offer the installed tools to MCP clients, and manage HTTP tokens."""


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


@mcp.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio for a client that starts this command; http for remote clients.",
)
@click.option(
    "--actor",
    envvar="CAIRNLOOP_MCP_ACTOR",
    help="stdio: id of the actor the client acts as [env CAIRNLOOP_MCP_ACTOR].",
)
@click.option(
    "--actor-kind",
    envvar="CAIRNLOOP_MCP_ACTOR_KIND",
    type=ACTOR_KINDS,
    default="agent",
    show_default=True,
    help="stdio: kind of that actor [env CAIRNLOOP_MCP_ACTOR_KIND].",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    envvar="CAIRNLOOP_MCP_SCOPES",
    help="stdio: a scope the actor holds; repeatable "
    "[env CAIRNLOOP_MCP_SCOPES, space-separated].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="http: address to listen on.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="http: port to listen on (0 picks a free one).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    transport: str,
    actor: str | None,
    actor_kind: str,
    scopes: tuple[str, ...],
    host: str,
    port: int,
) -> None:
    """Serve the installed tools over MCP.

    Over stdio the actor comes from --actor (or the environment); over HTTP
    each request's bearer token names it.
    """
    state: State = ctx.obj
    if transport == "http":
        for name in ("actor", "actor_kind", "scopes"):
            if _given(ctx, name):
                raise click.UsageError(
                    f"--{name.rstrip('s').replace('_', '-')} applies to stdio; over "
                    "HTTP each request's bearer token names the actor and scopes"
                )
        _serve_http(state, host, port)
        return

    for name in ("host", "port"):
        if _given(ctx, name):
            raise click.UsageError(f"--{name} applies to --transport http")
    if not actor:
        raise click.UsageError(
            "give the actor the MCP client acts as with --actor or CAIRNLOOP_MCP_ACTOR"
        )
    from cairnloop_core.actors import Actor, ActorKind
    from cairnloop_core.mcp.calls import Caller
    from cairnloop_core.mcp.server import serve_stdio

    caller = Caller(
        Actor(actor, ActorKind(actor_kind)), tuple(sorted(set(scopes))), "stdio"
    )
    serve_stdio(state.app(), caller)


def _serve_http(state: State, host: str, port: int) -> None:
    from cairnloop_core.mcp.http import serve_http

    def ready(url: str) -> None:
        click.echo(
            f"MCP server listening at {url}; every request needs "
            "'Authorization: Bearer <token>'.",
            err=True,
        )

    serve_http(state.app(), host=host, port=port, on_ready=ready)


@mcp.group(context_settings=CONTEXT_SETTINGS)
def token() -> None:
    """Issue, list and revoke the bearer tokens of the HTTP transport."""


def _store(state: State) -> TokenStore:
    from cairnloop_core.mcp.tokens import TokenStore

    store = TokenStore(state.app().engine)
    store.require_table()
    return store


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "never"


@token.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--actor", required=True, help="Id of the actor the token acts as.")
@click.option("--actor-kind", type=ACTOR_KINDS, default="agent", show_default=True)
@click.option(
    "--scope", "scopes", multiple=True, help="A scope the actor holds (repeatable)."
)
@click.option(
    "--expires",
    metavar="WHEN",
    help="When it stops working: an ISO time or a duration such as 30d "
    "(default: never).",
)
@json_option
@click.pass_obj
def issue(
    state: State,
    name: str,
    actor: str,
    actor_kind: str,
    scopes: tuple[str, ...],
    expires: str | None,
    as_json: bool,
) -> None:
    """Issue a token NAME; the token itself is printed once, on stdout."""
    from cairnloop_core.actors import Actor, ActorKind

    moment = parse_when(expires, "--expires") if expires else None
    issued = _store(state).issue(
        name,
        actor=Actor(actor, ActorKind(actor_kind)),
        scopes=scopes,
        expires_at=moment,
    )
    token = issued.token
    if as_json:
        echo_json({**token.as_dict(), "token": issued.secret})
        return
    click.echo(
        f"Issued token {token.name!r} acting as {token.actor}, scopes: "
        f"{', '.join(token.scopes) or 'none'}, expires: {_when(token.expires_at)}.",
        err=True,
    )
    click.echo("It is shown only this once; store it now.", err=True)
    click.echo(issued.secret)


@token.command(name="list", context_settings=CONTEXT_SETTINGS)
@json_option
@click.pass_obj
def list_(state: State, as_json: bool) -> None:
    """List every token (never the secrets) and whether it still works."""
    tokens = _store(state).list_tokens()
    if as_json:
        echo_json([token.as_dict() for token in tokens])
        return
    if not tokens:
        click.echo("No MCP tokens have been issued.")
        return
    click.echo(f"{'NAME':<20} {'ACTOR':<28} {'STATUS':<8} {'EXPIRES':<21} SCOPES")
    for token in tokens:
        click.echo(
            f"{token.name:<20} {token.actor!s:<28} {token.status():<8} "
            f"{_when(token.expires_at):<21} {', '.join(token.scopes) or '-'}"
        )


@token.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@json_option
@click.pass_obj
def revoke(state: State, name: str, as_json: bool) -> None:
    """Revoke token NAME; requests carrying it are refused from now on."""
    token, changed = _store(state).revoke(name)
    if as_json:
        echo_json({**token.as_dict(), "changed": changed})
    elif changed:
        click.echo(f"Token {token.name!r} is revoked; requests with it are refused.")
    else:
        click.echo(
            f"Token {token.name!r} was already revoked at {_when(token.revoked_at)}."
        )
