"""The hash chain that makes each proposal's event list tamper-evident."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from cairnloop_core.inputs import canonical_json, hash_input
from cairnloop_core.schema import events, proposals

__all__ = ["AuditProblem", "event_hash", "verify_audit_trail"]

HASHED_FIELDS = (
    "proposal_id",
    "seq",
    "type",
    "actor_id",
    "actor_kind",
    "from_status",
    "to_status",
    "reason",
    "input_hash",
    "attempt",
    "data",
)


def event_hash(prev_hash: str | None, event: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's canonical fields."""
    # The chain is unkeyed: it shows an edit, a gap or a splice, but someone
    # who can write the database and recomputes a whole chain and its head
    # on the proposal row is not detected. Copy last_event_hash values to
    # storage outside the database to anchor them where that matters.
    body = {name: event.get(name) for name in HASHED_FIELDS}
    body["at"] = event["at"].isoformat()
    material = (prev_hash or "") + canonical_json(body)
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class AuditProblem:
    """One place where the stored trail disagrees with its hash chain."""

    proposal_id: int
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else "its event list"
        return f"proposal {self.proposal_id}, {where}: {self.problem}"


@dataclass
class _Head:
    """What the proposal row claims about its own trail."""

    event_count: int
    last_event_hash: str | None
    status: str
    input_hash: str
    input_matches: bool
    last_seq: int = 0
    tail_hash: str | None = None
    tail_status: str | None = None


def _heads(connection: Connection) -> dict[int, _Head]:
    heads = {}
    rows = connection.execute(
        select(
            proposals.c.id,
            proposals.c.event_count,
            proposals.c.last_event_hash,
            proposals.c.status,
            proposals.c.input,
            proposals.c.input_hash,
        )
    )
    for row in rows:
        heads[row.id] = _Head(
            row.event_count,
            row.last_event_hash,
            row.status,
            row.input_hash,
            _input_hash(row.input) == row.input_hash,
        )
    return heads


def _input_hash(data: Any) -> str | None:
    try:
        return hash_input(data)
    except (TypeError, ValueError):
        return None


def verify_audit_trail(connection: Connection) -> tuple[int, list[AuditProblem]]:
    """Recompute every chain; return the number of events checked and problems.

    Finds an edited event (its hash no longer matches), a deleted event (a gap
    in the sequence, or a chain shorter than the proposal records), a
    reordered or spliced chain (a broken link), and a proposal row changed
    behind its trail's back (its status or input no longer what the events
    recorded).
    """
    problems: list[AuditProblem] = []
    heads = _heads(connection)
    checked = 0
    rows = connection.execute(
        select(events).order_by(events.c.proposal_id, events.c.seq)
    ).mappings()
    for row in rows:
        checked += 1
        pid = row["proposal_id"]
        head = heads.get(pid)
        last_seq, prev_hash = (
            (head.last_seq, head.tail_hash) if head is not None else (0, None)
        )
        if row["seq"] != last_seq + 1:
            problems.append(
                AuditProblem(pid, last_seq + 1, "is missing (deleted or never written)")
            )
        if row["prev_hash"] != prev_hash:
            problems.append(
                AuditProblem(pid, row["seq"], "does not link to the event before it")
            )
        if event_hash(row["prev_hash"], dict(row)) != row["hash"]:
            problems.append(
                AuditProblem(pid, row["seq"], "was edited after it was written")
            )
        if head is None:
            problems.append(AuditProblem(pid, row["seq"], "belongs to no proposal row"))
            continue
        if row["input_hash"] != head.input_hash:
            problems.append(
                AuditProblem(
                    pid,
                    row["seq"],
                    "records another input hash than the proposal row holds",
                )
            )
        head.last_seq, head.tail_hash = row["seq"], row["hash"]
        head.tail_status = row["to_status"]

    for pid, head in heads.items():
        problems.extend(_head_problems(pid, head))
    return checked, problems


def _head_problems(pid: int, head: _Head) -> list[AuditProblem]:
    found = []
    if head.event_count != head.last_seq or head.last_event_hash != head.tail_hash:
        found.append(
            AuditProblem(
                pid,
                None,
                f"the proposal records {head.event_count} events but "
                f"{head.last_seq} chain up to its last hash; events were deleted "
                "or replaced",
            )
        )
    if head.tail_status is not None and head.status != head.tail_status:
        found.append(
            AuditProblem(
                pid,
                None,
                f"its status is {head.status} but its last event left it "
                f"{head.tail_status}; the row or its events were changed "
                "outside Cairnloop",
            )
        )
    if not head.input_matches:
        found.append(
            AuditProblem(
                pid,
                None,
                "its input no longer matches its input hash; the input was "
                "changed after it was proposed",
            )
        )
    return found
