"""The tables Cairnloop owns in the host's database, all prefixed ``cairnloop_``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MESSAGE_ROLES",
    "conversations",
    "events",
    "iso",
    "mcp_tokens",
    "messages",
    "metadata",
    "proposals",
    "utcnow",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MESSAGE_ROLES = ("user", "assistant", "operator", "system", "internal_note")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """A timestamp as ISO 8601 text for JSON output, ``None`` kept."""
    return value.isoformat() if value is not None else None


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")

proposals = Table(
    "cairnloop_proposals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tool", String(64), nullable=False),
    Column("tool_version", String(64)),
    Column("risk_tier", String(20), nullable=False),
    Column("approval_mode", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("input", Json, nullable=False),
    Column("input_hash", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("idempotency_key", String(200), unique=True),
    Column("dedupe_key", String(64), unique=True),
    Column("errors", Json),
    Column("reason", Text),
    Column("preview", Text),
    Column("result", Json),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("due_at", UTCDateTime()),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime()),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("defer_until", UTCDateTime()),
    Column("decided_by", String(200)),
    Column("event_count", Integer, nullable=False, default=0),
    Column("last_event_hash", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_cairnloop_proposals_status_due", "status", "due_at"),
    Index("ix_cairnloop_proposals_status_expires", "status", "expires_at"),
)

events = Table(
    "cairnloop_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "proposal_id",
        Id,
        ForeignKey("cairnloop_proposals.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("type", String(40), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20)),
    Column("reason", Text),
    Column("input_hash", String(64)),
    Column("attempt", Integer),
    Column("data", Json),
    Column("at", UTCDateTime(), nullable=False),
    Column("prev_hash", String(64)),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("proposal_id", "seq", name="uq_cairnloop_events_proposal_seq"),
)

conversations = Table(
    "cairnloop_conversations",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("title", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
)

messages = Table(
    "cairnloop_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        String(128),
        ForeignKey("cairnloop_conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("role", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("run_key", String(200), unique=True),
    Column("details", Json),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(
        "role IN ('user', 'assistant', 'operator', 'system', 'internal_note')",
        name="role",
    ),
)

mcp_tokens = Table(
    "cairnloop_mcp_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
)
