"""What every command shares: the lazily opened facade, JSON output and the
translation of errors into one line and an exit code."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from cairnloop_core.app import Cairnloop
    from cairnloop_core.registry import Registry

__all__ = [
    "CONTEXT_SETTINGS",
    "EXIT_BAD_INPUT",
    "EXIT_REFUSED",
    "State",
    "echo_json",
    "fail",
    "parse_when",
]

logger = logging.getLogger(__name__)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class State:
    """The command's shared state: the database URL and, once opened, the app."""

    database_url: str | None
    _app: Cairnloop | None = field(default=None, repr=False)
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from cairnloop_core.registry import Registry

            self._registry = Registry.discover()
        return self._registry

    def app(self, *, require_schema: bool = True) -> Cairnloop:
        if self._app is None:
            from cairnloop_core.app import Cairnloop
            from cairnloop_core.database import current_revision
            from cairnloop_core.errors import ConfigurationError

            self._app = Cairnloop(self.database_url, registry=self.registry)
            if require_schema and current_revision(self._app.engine) is None:
                raise ConfigurationError(
                    "the database has no Cairnloop tables yet; "
                    "run 'cairnloop db upgrade' first."
                )
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def parse_when(value: str, field_name: str) -> dt.datetime:
    """A moment from an ISO 8601 time (UTC if no zone) or a duration from now."""
    from cairnloop_core.schema import utcnow

    match = DURATION.match(value.strip())
    if match:
        try:
            return utcnow() + dt.timedelta(seconds=float(match[1]) * UNITS[match[2]])
        except OverflowError:
            raise click.BadParameter(
                "is too far in the future", param_hint=field_name
            ) from None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            "give an ISO 8601 time such as 2026-12-24T09:00Z or a duration "
            "such as 30m, 2h or 1d",
            param_hint=field_name,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


OPERATIONAL_HINTS = {
    "readonly database": "; SQLite needs write access to the file and its folder, "
    "even to read, so check their permissions",
    "unable to open database file": "; check that the folder exists and that "
    "this user may create files in it",
}


def _hint(reason: str) -> str:
    for fragment, hint in OPERATIONAL_HINTS.items():
        if fragment in reason:
            return hint
    return ""


def fail(exc: BaseException) -> NoReturn:
    """Print one readable line for ``exc`` and exit with its code."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from cairnloop_core.errors import (
        CairnloopError,
        DecisionRefused,
    )

    if isinstance(exc, DecisionRefused):
        click.echo(f"Refused: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    if isinstance(exc, CairnloopError):
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if isinstance(exc, OperationalError):
        reason = (
            str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        )
        click.echo(
            f"Error: the database could not be used: {reason}{_hint(reason)}",
            err=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    if isinstance(exc, DBAPIError) and type(exc.orig) is sqlite3.DatabaseError:
        # Not an SQLite database at all: a corrupt file, or another kind of file.
        click.echo(
            f"Error: the database could not be used: {exc.orig}; check that "
            "the database URL names an SQLite file Cairnloop created.",
            err=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    if isinstance(exc, DBAPIError):
        click.echo(
            f"Error: the database refused the operation: {type(exc.orig).__name__}",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    logger.debug("Unexpected error", exc_info=exc)
    click.echo(
        f"Error: unexpected {type(exc).__name__}; rerun with --log-level debug "
        "and report it.",
        err=True,
    )
    sys.exit(EXIT_INTERNAL)
