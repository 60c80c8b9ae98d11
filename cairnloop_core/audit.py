"""The hash chain that makes each proposal's event list tamper-evident."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from cairnloop_core.inputs import canonical_json
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


def verify_audit_trail(connection: Connection) -> tuple[int, list[AuditProblem]]:
    """Recompute every chain; return the number of events checked and problems.

    Finds an edited event (its hash no longer matches), a deleted event (a gap
    in the sequence, or a chain shorter than the proposal records) and a
    reordered or spliced chain (a broken link).
    """
    problems: list[AuditProblem] = []
    heads = {
        row.id: (row.event_count, row.last_event_hash)
        for row in connection.execute(
            select(proposals.c.id, proposals.c.event_count, proposals.c.last_event_hash)
        )
    }
    seen: dict[int, tuple[int, str | None]] = {}
    checked = 0
    rows = connection.execute(
        select(events).order_by(events.c.proposal_id, events.c.seq)
    ).mappings()
    for row in rows:
        checked += 1
        pid = row["proposal_id"]
        last_seq, prev_hash = seen.get(pid, (0, None))
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
        seen[pid] = (row["seq"], row["hash"])

    for pid, (count, last_hash) in heads.items():
        last_seq, tail = seen.get(pid, (0, None))
        if count != last_seq or last_hash != tail:
            problems.append(
                AuditProblem(
                    pid,
                    None,
                    f"the proposal records {count} events but {last_seq} "
                    "chain up to its last hash; events were deleted or replaced",
                )
            )
    return checked, problems
