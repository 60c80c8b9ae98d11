"""The ``cairnloop`` command: one readable line per error, ``--json`` on every
listing, exit 0 for success, 1 when governance refuses, 2 for bad usage or input.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from cairnloop_core.cli.common import CONTEXT_SETTINGS, State, fail
from cairnloop_core.cli.conversations import conversation
from cairnloop_core.cli.governance import (
    approve,
    defer,
    inbox,
    propose,
    reject,
    reopen,
    show,
)
from cairnloop_core.cli.operations import audit, db, demo, worker
from cairnloop_core.cli.plugins import plugins, tools

__all__ = ["cli", "main"]


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--database-url",
    envvar="CAIRNLOOP_DATABASE_URL",
    default=None,
    metavar="URL",
    help="Database to use (default: CAIRNLOOP_DATABASE_URL, else ./cairnloop.db).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="How much to log on stderr.",
)
@click.version_option(package_name="cairnloop-core", prog_name="cairnloop")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, log_level: str) -> None:
    """Governed tools for AI agents and operators."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic narrates every schema check at info; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if database_url is not None and not database_url.strip():
        raise click.BadParameter(
            "is empty; give a URL such as sqlite:///cairnloop.db, or leave it out",
            param_hint="--database-url",
        )
    ctx.obj = State(database_url=database_url)
    ctx.call_on_close(ctx.obj.close)


for command in (plugins, tools, propose, inbox, approve, reject, defer, reopen, show):
    cli.add_command(command)
for command in (db, worker, audit, demo, conversation):
    cli.add_command(command)


def _register_optional_commands() -> None:
    try:
        from cairnloop_core.cli.mcp import mcp
    except ImportError:
        return
    cli.add_command(mcp)


_register_optional_commands()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``cairnloop`` command."""
    try:
        return cli.main(args=argv, prog_name="cairnloop", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BaseException as exc:
        fail(exc)
