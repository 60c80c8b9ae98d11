"""Finding the installed plugins' entry points and choosing which of them load."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, distributions

__all__ = [
    "ALLOW_ENV",
    "BLOCK_ENV",
    "POLICY_GROUP",
    "TOOL_GROUP",
    "Candidate",
    "Selection",
    "UnreadableDistribution",
    "canonical_name",
    "find_candidates",
]

logger = logging.getLogger(__name__)

TOOL_GROUP = "cairnloop.tools"
POLICY_GROUP = "cairnloop.policies"
GROUP_KINDS = {TOOL_GROUP: "tool", POLICY_GROUP: "policy"}
ALLOW_ENV = "CAIRNLOOP_PLUGINS_ALLOW"
BLOCK_ENV = "CAIRNLOOP_PLUGINS_BLOCK"


def canonical_name(name: str) -> str:
    """A distribution name as pip compares them: lowercase, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Candidate:
    """One entry point in a Cairnloop group and the distribution it came from."""

    point: EntryPoint
    kind: str
    distribution: str | None
    version: str | None

    @property
    def name(self) -> str:
        return self.point.name


@dataclass(frozen=True)
class UnreadableDistribution:
    """A distribution that declares Cairnloop entry points nobody can parse."""

    distribution: str
    version: str | None
    kind: str
    reason: str


def find_candidates() -> tuple[list[Candidate], list[UnreadableDistribution]]:
    """Every entry point in the Cairnloop groups, read one distribution at a time.

    ``importlib.metadata.entry_points()`` gives up on all distributions when a
    single ``entry_points.txt`` is malformed; reading each on its own keeps
    one broken distribution from hiding the others. As in ``importlib``, the
    first distribution of a name on ``sys.path`` wins.
    """
    candidates: list[Candidate] = []
    unreadable: list[UnreadableDistribution] = []
    seen: set[str] = set()
    for dist in distributions():
        name = _distribution_name(dist)
        if name is not None:
            if canonical_name(name) in seen:
                continue
            seen.add(canonical_name(name))

        try:
            points = list(dist.entry_points)
        except Exception as exc:
            problem = _unreadable(dist, name, exc)
            if problem is not None:
                unreadable.append(problem)
            continue

        for point in points:
            kind = GROUP_KINDS.get(point.group)
            if kind is not None:
                candidates.append(Candidate(point, kind, name, _version(dist)))
    return candidates, unreadable


def _distribution_name(dist: Distribution) -> str | None:
    try:
        name = dist.metadata["Name"]
    except Exception:
        return None
    return str(name) if name else None


def _version(dist: Distribution) -> str | None:
    try:
        version = dist.metadata["Version"]
    except Exception:
        return None
    return str(version) if version else None


def _unreadable(
    dist: Distribution, name: str | None, exc: Exception
) -> UnreadableDistribution | None:
    text = dist.read_text("entry_points.txt") or ""
    if f"[{TOOL_GROUP}]" in text:
        kind = "tool"
    elif f"[{POLICY_GROUP}]" in text:
        kind = "policy"
    else:
        # Not ours to report: it declares no Cairnloop entry points.
        logger.debug(
            "Ignored unreadable entry points of %r: %s",
            name,
            type(exc).__name__,
            extra={"event": "entry_points_unreadable", "distribution": name},
        )
        return None
    logger.debug(
        "Entry points of %r cannot be parsed: %s",
        name,
        type(exc).__name__,
        extra={"event": "entry_points_unreadable", "distribution": name},
    )
    return UnreadableDistribution(
        distribution=name or "an unnamed distribution",
        version=_version(dist),
        kind=kind,
        reason=(
            "its entry_points.txt cannot be parsed; each line under a "
            "[section] must read 'name = module:object'. "
            "Reinstall the distribution or fix its entry points."
        ),
    )


def _names(raw: Iterable[str] | None) -> frozenset[str] | None:
    if raw is None:
        return None
    return frozenset(part.strip() for part in raw if part.strip())


def _names_from_env(variable: str) -> frozenset[str] | None:
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return None
    return _names(raw.split(","))


@dataclass(frozen=True)
class Selection:
    """The allow-list and block-list that choose which plugins load.

    An entry names a plugin (its entry point name) or a whole distribution.
    With no allow-list every plugin may load; the block-list wins over it.
    The lists come from code or the environment; there is no configuration
    file for them yet.
    """

    allow: frozenset[str] | None
    block: frozenset[str]
    allow_source: str = ALLOW_ENV
    block_source: str = BLOCK_ENV

    @classmethod
    def resolve(
        cls, allow: Iterable[str] | None, block: Iterable[str] | None
    ) -> Selection:
        """The lists given in code, else those from the environment."""
        if allow is not None:
            allowed, allow_source = _names(allow), "the allow-list given in code"
        else:
            allowed, allow_source = _names_from_env(ALLOW_ENV), ALLOW_ENV
        if block is not None:
            blocked, block_source = _names(block), "the block-list given in code"
        else:
            blocked, block_source = _names_from_env(BLOCK_ENV), BLOCK_ENV
        return cls(allowed, blocked or frozenset(), allow_source, block_source)

    def disabled_because(self, candidate: Candidate) -> str | None:
        """Why ``candidate`` must not load, or ``None`` when it may."""
        if any(_matches(entry, candidate) for entry in self.block):
            return f"it is listed in {self.block_source}"
        if self.allow is not None and not any(
            _matches(entry, candidate) for entry in self.allow
        ):
            return f"it is not listed in {self.allow_source}"
        return None

    def unmatched(self, candidates: Iterable[Candidate]) -> list[str]:
        """Entries of either list that name no installed plugin or distribution."""
        present = list(candidates)
        entries = sorted((self.allow or frozenset()) | self.block)
        return [e for e in entries if not any(_matches(e, c) for c in present)]


def _matches(entry: str, candidate: Candidate) -> bool:
    if entry == candidate.name:
        return True
    dist = candidate.distribution
    return dist is not None and canonical_name(entry) == canonical_name(dist)
