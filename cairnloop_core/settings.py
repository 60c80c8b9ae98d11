"""The knobs a host may turn, with the defaults Cairnloop ships."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from cairnloop_core.errors import InvalidArgument

__all__ = ["MAX_BATCH_SIZE", "MAX_SECONDS", "MAX_TTL", "Settings", "check_ttl"]

MAX_TTL = dt.timedelta(days=3650)
# The longest poll, lease margin or stop grace: a day. Longer waits overflow the
# platform's timeouts and mean "never" anyway.
MAX_SECONDS = 86400.0
MAX_BATCH_SIZE = 1000


def check_ttl(ttl: object, field: str = "ttl") -> dt.timedelta:
    """Return ``ttl`` if it is a usable time to live, else raise.

    Raises ``InvalidArgument`` unless it is a duration above zero and at most
    ten years (longer ones overflow date arithmetic and mean "never").
    """
    if not isinstance(ttl, dt.timedelta) or ttl <= dt.timedelta(0):
        raise InvalidArgument(field, "must be a positive duration")
    if ttl > MAX_TTL:
        raise InvalidArgument(field, f"must be at most {MAX_TTL.days} days")
    return ttl


@dataclass(frozen=True)
class Settings:
    """Governance and executor settings.

    ``ttl`` is how long a proposal may wait for a decision and for its run.
    ``allow_self_approval`` lets an actor approve their own proposal.
    ``poll_seconds`` is how often an idle worker looks for work when no
    wake-up reaches it. ``lease_margin_seconds`` is added to a tool's timeout
    to form the lease of a non-transactional run. ``stop_grace_seconds`` is
    how long a stopping worker still waits for a non-transactional run before
    it releases the proposal for a retry. ``batch_size`` is how many due
    proposals the executor claims, runs and commits in one transaction.
    """

    ttl: dt.timedelta = dt.timedelta(hours=48)
    allow_self_approval: bool = False
    max_reason_length: int = 2000
    poll_seconds: float = 1.0
    lease_margin_seconds: float = 30.0
    stop_grace_seconds: float = 10.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_ttl(self.ttl)
        if (
            isinstance(self.max_reason_length, bool)
            or not isinstance(self.max_reason_length, int)
            or self.max_reason_length < 1
        ):
            raise InvalidArgument("max_reason_length", "must be a positive integer")
        for name in ("poll_seconds", "lease_margin_seconds", "stop_grace_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value > MAX_SECONDS:
                raise InvalidArgument(
                    name, f"must be a number of seconds up to {MAX_SECONDS:.0f}"
                )
        if self.poll_seconds <= 0:
            raise InvalidArgument("poll_seconds", "must be greater than zero")
        if self.lease_margin_seconds < 0:
            raise InvalidArgument("lease_margin_seconds", "must not be negative")
        if self.stop_grace_seconds < 0:
            raise InvalidArgument("stop_grace_seconds", "must not be negative")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not (1 <= self.batch_size <= MAX_BATCH_SIZE)
        ):
            raise InvalidArgument(
                "batch_size", f"must be a whole number from 1 to {MAX_BATCH_SIZE}"
            )
