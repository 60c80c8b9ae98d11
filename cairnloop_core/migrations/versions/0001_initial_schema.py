"""Proposals, their append-only events, and the support-thread store.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

REFUSAL = "cairnloop_events is append-only: events cannot be updated or deleted"

POSTGRES_GUARD = f"""
CREATE FUNCTION cairnloop_refuse_event_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{REFUSAL}';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER cairnloop_events_append_only
    BEFORE UPDATE OR DELETE ON cairnloop_events
    FOR EACH ROW EXECUTE FUNCTION cairnloop_refuse_event_change();

CREATE TRIGGER cairnloop_events_no_truncate
    BEFORE TRUNCATE ON cairnloop_events
    FOR EACH STATEMENT EXECUTE FUNCTION cairnloop_refuse_event_change();
"""

SQLITE_GUARDS = [
    f"""
    CREATE TRIGGER cairnloop_events_no_update BEFORE UPDATE ON cairnloop_events
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END
    """,
    f"""
    CREATE TRIGGER cairnloop_events_no_delete BEFORE DELETE ON cairnloop_events
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END
    """,
]


def upgrade() -> None:
    op.create_table(
        "cairnloop_conversations",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cairnloop_conversations"),
    )
    op.create_table(
        "cairnloop_proposals",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("tool_version", sa.String(64)),
        sa.Column("risk_tier", sa.String(20), nullable=False),
        sa.Column("approval_mode", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("context", JSON, nullable=False),
        sa.Column("input", JSON, nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("dedupe_key", sa.String(64)),
        sa.Column("errors", JSON),
        sa.Column("reason", sa.Text()),
        sa.Column("preview", sa.Text()),
        sa.Column("result", JSON),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", TIMESTAMP),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", TIMESTAMP),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("defer_until", TIMESTAMP),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("last_event_hash", sa.String(64)),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cairnloop_proposals"),
        sa.UniqueConstraint("dedupe_key", name="uq_cairnloop_proposals_dedupe_key"),
        sa.UniqueConstraint(
            "idempotency_key", name="uq_cairnloop_proposals_idempotency_key"
        ),
    )
    op.create_index(
        "ix_cairnloop_proposals_status_due",
        "cairnloop_proposals",
        ["status", "due_at"],
    )
    op.create_index(
        "ix_cairnloop_proposals_status_expires",
        "cairnloop_proposals",
        ["status", "expires_at"],
    )
    op.create_table(
        "cairnloop_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("proposal_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20)),
        sa.Column("reason", sa.Text()),
        sa.Column("input_hash", sa.String(64)),
        sa.Column("attempt", sa.Integer()),
        sa.Column("data", JSON),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["cairnloop_proposals.id"],
            name="fk_cairnloop_events_proposal_id_cairnloop_proposals",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cairnloop_events"),
        sa.UniqueConstraint(
            "proposal_id", "seq", name="uq_cairnloop_events_proposal_seq"
        ),
    )
    op.create_table(
        "cairnloop_messages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("run_key", sa.String(200)),
        sa.Column("details", JSON),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'operator', 'system', 'internal_note')",
            name="ck_cairnloop_messages_role",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["cairnloop_conversations.id"],
            name="fk_cairnloop_messages_conversation_id_cairnloop_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cairnloop_messages"),
        sa.UniqueConstraint("run_key", name="uq_cairnloop_messages_run_key"),
    )
    op.create_index(
        "ix_cairnloop_messages_conversation_id",
        "cairnloop_messages",
        ["conversation_id"],
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_GUARD)
    else:
        for statement in SQLITE_GUARDS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cairnloop_events_append_only ON cairnloop_events")
        op.execute("DROP TRIGGER cairnloop_events_no_truncate ON cairnloop_events")
        op.execute("DROP FUNCTION cairnloop_refuse_event_change()")
    else:
        op.execute("DROP TRIGGER cairnloop_events_no_update")
        op.execute("DROP TRIGGER cairnloop_events_no_delete")
    op.drop_index("ix_cairnloop_messages_conversation_id", "cairnloop_messages")
    op.drop_table("cairnloop_messages")
    op.drop_table("cairnloop_events")
    op.drop_index("ix_cairnloop_proposals_status_expires", "cairnloop_proposals")
    op.drop_index("ix_cairnloop_proposals_status_due", "cairnloop_proposals")
    op.drop_table("cairnloop_proposals")
    op.drop_table("cairnloop_conversations")
