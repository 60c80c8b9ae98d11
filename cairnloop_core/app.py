"""The facade a host embeds: one object for proposing, deciding, reading,
executing and auditing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, func, insert, select

from cairnloop_core.actors import Actor
from cairnloop_core.audit import AuditProblem, verify_audit_trail
from cairnloop_core.database import (
    create_database_engine,
    prepare_engine,
    upgrade_schema,
)
from cairnloop_core.errors import InvalidArgument, ProposalNotFound
from cairnloop_core.executor import Executor, RunOutcome
from cairnloop_core.governance import Governance
from cairnloop_core.inputs import UNSTORABLE_TEXT, unstorable_text
from cairnloop_core.proposals import (
    Event,
    Proposal,
    ProposalStatus,
    ProposeResult,
    check_proposal_id,
)
from cairnloop_core.registry import Registry
from cairnloop_core.schema import conversations, events, messages, proposals, utcnow
from cairnloop_core.settings import Settings
from cairnloop_core.worker import Worker

__all__ = ["Cairnloop"]

INBOX_STATUSES = (ProposalStatus.PENDING.value, ProposalStatus.DEFERRED.value)
MAX_INBOX_LIMIT = 1000


class Cairnloop:
    """Governed tools on one database.

    Give a database URL, or a host ``engine`` to be a guest in the host's
    database; with neither, ``CAIRNLOOP_DATABASE_URL`` or the SQLite file
    ``cairnloop.db`` in the current folder is used. Plugins are discovered
    from entry points unless a ``registry`` is given.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine: Engine | None = None,
        registry: Registry | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.engine = (
            prepare_engine(engine)
            if engine is not None
            else (create_database_engine(database_url))
        )
        self._owns_engine = engine is None
        self.registry = registry if registry is not None else Registry.discover()
        self.settings = settings or Settings()
        self.governance = Governance(self.engine, self.registry, self.settings)
        self._executor: Executor | None = None

    def close(self) -> None:
        """Release the executor's threads and, if it created it, the engine."""
        if self._executor is not None:
            self._executor.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Cairnloop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upgrade(self) -> None:
        """Create or upgrade Cairnloop's tables."""
        upgrade_schema(self.engine)

    # -- governance ------------------------------------------------------------

    def propose(
        self,
        tool: str,
        *,
        actor: Actor | str,
        input: Mapping[str, Any] | None,
        scopes: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        ttl: dt.timedelta | None = None,
    ) -> ProposeResult:
        """Validate and record a tool call; see ``Governance.propose``."""
        return self.governance.propose(
            tool,
            actor=actor,
            input=input,
            scopes=scopes,
            context=context,
            idempotency_key=idempotency_key,
            ttl=ttl,
        )

    def approve(
        self, proposal_id: int, *, actor: Actor | str, note: str | None = None
    ) -> Proposal:
        return self.governance.approve(proposal_id, actor=actor, note=note)

    def reject(self, proposal_id: int, *, actor: Actor | str, reason: str) -> Proposal:
        return self.governance.reject(proposal_id, actor=actor, reason=reason)

    def defer(
        self,
        proposal_id: int,
        *,
        actor: Actor | str,
        reason: str,
        until: dt.datetime | None = None,
    ) -> Proposal:
        return self.governance.defer(
            proposal_id, actor=actor, reason=reason, until=until
        )

    def reopen(self, proposal_id: int, *, actor: Actor | str) -> Proposal:
        return self.governance.reopen(proposal_id, actor=actor)

    def expire_due(self, now: dt.datetime | None = None) -> int:
        return self.governance.expire_due(now)

    # -- reading ---------------------------------------------------------------

    def get(self, proposal_id: int) -> Proposal:
        """The proposal with this id; raises ``ProposalNotFound``."""
        proposal_id = check_proposal_id(proposal_id)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(proposals).where(proposals.c.id == proposal_id)
            ).first()
            connection.rollback()
        if row is None:
            raise ProposalNotFound(proposal_id)
        return Proposal.from_row(row)

    def events(self, proposal_id: int) -> list[Event]:
        """The proposal's audit events, oldest first."""
        self.get(proposal_id)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(events)
                .where(events.c.proposal_id == proposal_id)
                .order_by(events.c.seq)
            ).all()
            connection.rollback()
        return [Event.from_row(row) for row in rows]

    def inbox(self, limit: int = 100) -> list[Proposal]:
        """Proposals waiting for a decision (pending, then deferred), oldest first."""
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_INBOX_LIMIT
        ):
            raise InvalidArgument(
                "limit", f"must be a whole number from 1 to {MAX_INBOX_LIMIT}"
            )
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(proposals)
                .where(proposals.c.status.in_(INBOX_STATUSES))
                .order_by(proposals.c.status.desc(), proposals.c.id)
                .limit(limit)
            ).all()
            connection.rollback()
        return [Proposal.from_row(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(proposals.c.status, func.count()).group_by(proposals.c.status)
            ).all()
            connection.rollback()
        return {status: count for status, count in rows}

    # -- executing -------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(self.engine, self.registry, self.settings)
        return self._executor

    def run_once(self) -> RunOutcome | None:
        """Take one due proposal to its next state; ``None`` if nothing is due."""
        return self.executor.run_once()

    def drain(self) -> list[RunOutcome]:
        """Expire what is due, then run approved proposals until none is due."""
        self.expire_due()
        return self.executor.drain()

    def worker(self, *, concurrency: int = 1) -> Worker:
        """A worker for this database; call ``start()`` to run it in a thread."""
        return Worker(self, concurrency=concurrency)

    # -- auditing --------------------------------------------------------------

    def verify_audit(self) -> tuple[int, list[AuditProblem]]:
        """Check every event hash chain; return events checked and problems."""
        with self.engine.connect() as connection:
            result = verify_audit_trail(connection)
            connection.rollback()
        return result

    # -- the support-thread store -------------------------------------------------

    def create_conversation(
        self, conversation_id: str, title: str | None = None
    ) -> None:
        """Add a conversation that tools such as internal_note can write to."""
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise InvalidArgument("conversation_id", "must be a non-blank id")
        if len(conversation_id) > 128:
            raise InvalidArgument("conversation_id", "must be at most 128 characters")
        for field, value in (("conversation_id", conversation_id), ("title", title)):
            if unstorable_text(value):
                raise InvalidArgument(field, UNSTORABLE_TEXT)
        if title is not None and len(title) > 200:
            raise InvalidArgument("title", "must be at most 200 characters")
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(conversations.c.id).where(conversations.c.id == conversation_id)
            ).first()
            if exists is None:
                connection.execute(
                    insert(conversations).values(
                        id=conversation_id, title=title, created_at=utcnow()
                    )
                )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """A conversation as a dict; raises ``InvalidArgument`` if unknown."""
        with self.engine.connect() as connection:
            row = (
                connection.execute(
                    select(conversations).where(conversations.c.id == conversation_id)
                )
                .mappings()
                .first()
            )
            connection.rollback()
        if row is None:
            raise InvalidArgument(
                "conversation_id",
                f"conversation {conversation_id!r} does not exist; create it with "
                "'cairnloop conversation create'",
            )
        return {k: _json_value(v) for k, v in row.items()}

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The messages of a conversation, oldest first."""
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    select(messages)
                    .where(messages.c.conversation_id == conversation_id)
                    .order_by(messages.c.id)
                )
                .mappings()
                .all()
            )
            connection.rollback()
        return [{k: _json_value(v) for k, v in row.items()} for row in rows]


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value
