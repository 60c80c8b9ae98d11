"""Proposal rows and their events, written together, compare-and-set."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from cairnloop_core.actors import Actor
from cairnloop_core.audit import event_hash
from cairnloop_core.errors import ProposalNotFound
from cairnloop_core.schema import events, proposals, utcnow

__all__ = [
    "EventDraft",
    "Move",
    "Transition",
    "apply_moves",
    "insert_proposal",
    "load_proposal",
    "transition",
]

MAX_CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class EventDraft:
    """An event about to be appended; the store fills sequence and hashes."""

    type: str
    actor: Actor
    from_status: str | None
    to_status: str | None
    reason: str | None = None
    attempt: int | None = None
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Move:
    """One transition of a proposal whose row the caller holds locked."""

    row: Row[Any]
    draft: EventDraft
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Transition:
    """What ``transition`` did: the row after it, or the row that refused it."""

    applied: bool
    row: Row[Any]


def load_proposal(
    connection: Connection, proposal_id: int, *, for_update: bool = False
) -> Row[Any]:
    """Read one proposal row; raise ``ProposalNotFound`` if there is none."""
    query = select(proposals).where(proposals.c.id == proposal_id)
    if for_update and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise ProposalNotFound(proposal_id)
    return row


def _event_values(
    proposal_id: int,
    seq: int,
    prev_hash: str | None,
    input_hash: str,
    draft: EventDraft,
    at: Any,
) -> dict[str, Any]:
    values = {
        "proposal_id": proposal_id,
        "seq": seq,
        "type": draft.type,
        "actor_id": draft.actor.id,
        "actor_kind": draft.actor.kind.value,
        "from_status": draft.from_status,
        "to_status": draft.to_status,
        "reason": draft.reason,
        "input_hash": input_hash,
        "attempt": draft.attempt,
        "data": dict(draft.data) if draft.data is not None else None,
        "at": at,
        "prev_hash": prev_hash,
    }
    values["hash"] = event_hash(prev_hash, values)
    return values


def _chain(
    proposal_id: int,
    start_seq: int,
    prev_hash: str | None,
    input_hash: str,
    drafts: Sequence[EventDraft],
    at: Any,
    from_status: str | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for offset, draft in enumerate(drafts, start=1):
        if draft.from_status is None and offset == 1 and from_status is not None:
            draft = replace(draft, from_status=from_status)
        values = _event_values(
            proposal_id, start_seq + offset, prev_hash, input_hash, draft, at
        )
        rows.append(values)
        prev_hash = values["hash"]
    return rows


def _head(row: Row[Any], chain: list[dict[str, Any]], now: Any) -> dict[str, Any]:
    """The proposal columns that follow the events just chained onto ``row``."""
    return {
        "status": chain[-1]["to_status"],
        "event_count": row.event_count + len(chain),
        "last_event_hash": chain[-1]["hash"],
        "updated_at": now,
    }


def insert_proposal(
    connection: Connection, values: Mapping[str, Any], drafts: Sequence[EventDraft]
) -> int:
    """Insert a proposal with its first events; return its id.

    Runs inside the caller's transaction; a unique-key clash raises
    ``IntegrityError`` for the caller to turn into a duplicate. A
    ``created_at`` in ``values`` is kept, so a TTL counted from it is exact.
    """
    now = values.get("created_at") or utcnow()
    row = dict(values, created_at=now, updated_at=now, event_count=0, attempts=0)
    proposal_id = connection.execute(
        insert(proposals).values(row).returning(proposals.c.id)
    ).scalar_one()

    chain = _chain(proposal_id, 0, None, row["input_hash"], drafts, now)
    connection.execute(insert(events), chain)
    connection.execute(
        update(proposals)
        .where(proposals.c.id == proposal_id)
        .values(event_count=len(chain), last_event_hash=chain[-1]["hash"])
    )
    return proposal_id


def transition(
    connection: Connection,
    proposal_id: int,
    *,
    expected: Collection[str],
    drafts: Sequence[EventDraft],
    values: Mapping[str, Any] | None = None,
    row: Row[Any] | None = None,
) -> Transition:
    """Move a proposal on only if its status is still one of ``expected``.

    The update and its events commit in the caller's transaction. The new
    status is the last draft's ``to_status``; a first draft without
    ``from_status`` is given the status the proposal had. Returns the refusing row,
    unchanged, when the status is no longer expected.
    """
    for _ in range(MAX_CAS_ATTEMPTS):
        current = row if row is not None else load_proposal(connection, proposal_id)
        row = None
        if current.status not in expected:
            return Transition(False, current)

        now = utcnow()
        chain = _chain(
            proposal_id,
            current.event_count,
            current.last_event_hash,
            current.input_hash,
            drafts,
            now,
            from_status=current.status,
        )
        changes = {**(values or {}), **_head(current, chain, now)}
        changed = connection.execute(
            update(proposals)
            .where(
                proposals.c.id == proposal_id,
                proposals.c.status == current.status,
                proposals.c.event_count == current.event_count,
            )
            .values(changes)
            .returning(*proposals.c)
        ).first()
        if changed is not None:
            connection.execute(insert(events), chain)
            return Transition(True, changed)
    current = load_proposal(connection, proposal_id)
    return Transition(False, current)


# The compare-and-set of apply_moves; its SET clause comes from the keys of
# the parameters, so one statement serves every move with the same columns.
_MOVE_WHERE = (
    proposals.c.id == bindparam("cas_id"),
    proposals.c.status == bindparam("cas_status"),
    proposals.c.event_count == bindparam("cas_event_count"),
)


def apply_moves(connection: Connection, moves: Sequence[Move]) -> int:
    """Write several transitions of locked rows at once; return how many applied.

    Each move appends one event to its proposal's chain and updates the row
    only if its status and event count are still those of ``move.row``
    (compare-and-set). Moves that change the same columns share one
    executemany; all events go in with one more. Runs in the caller's
    transaction; the caller holds the rows locked, so a move that does not
    apply means something bypassed Cairnloop, and the caller should roll back.
    """
    if not moves:
        return 0
    now = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    chains: list[dict[str, Any]] = []
    for move in moves:
        row = move.row
        chain = _chain(
            row.id,
            row.event_count,
            row.last_event_hash,
            row.input_hash,
            [move.draft],
            now,
            from_status=row.status,
        )
        chains.extend(chain)
        params = {**move.values, **_head(row, chain, now)}
        params.update(
            cas_id=row.id,
            cas_status=row.status,
            cas_event_count=row.event_count,
        )
        groups.setdefault(tuple(sorted(params)), []).append(params)

    applied = 0
    for group in groups.values():
        applied += connection.execute(
            update(proposals).where(*_MOVE_WHERE), group
        ).rowcount
    connection.execute(insert(events), chains)
    return applied
