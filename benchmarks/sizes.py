"""How much work each measurement does, for a full run and a quick one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """Counts per measurement; a full run stays within about ten minutes."""

    propose: int
    drain: int
    latency: int
    steps: int
    transactions: int
    raw_inserts: int
    peer_jobs: int
    cold_start_runs: int
    warmup: int
    worker_counts: tuple[int, ...] = (1, 4)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    propose=1000,
    drain=1000,
    latency=100,
    steps=100,
    transactions=20,
    raw_inserts=3000,
    peer_jobs=1000,
    cold_start_runs=15,
    warmup=20,
)

QUICK = Sizes(
    propose=100,
    drain=100,
    latency=10,
    steps=10,
    transactions=5,
    raw_inserts=300,
    peer_jobs=100,
    cold_start_runs=3,
    warmup=3,
)
