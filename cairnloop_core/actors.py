"""Who acts: an actor's id and kind, and the answers an authorize hook gives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["SYSTEM", "Actor", "ActorKind", "Allow", "Deny"]

MAX_ACTOR_ID_LENGTH = 200


class ActorKind(StrEnum):
    AGENT = "agent"
    OPERATOR = "operator"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """An agent, an operator or the system itself."""

    id: str
    kind: ActorKind = ActorKind.OPERATOR

    def __post_init__(self) -> None:
        from cairnloop_core.errors import InvalidArgument
        from cairnloop_core.inputs import UNSTORABLE_TEXT, unstorable_text

        if not isinstance(self.id, str) or not self.id.strip():
            raise InvalidArgument("actor", "must be a non-blank id")
        if len(self.id) > MAX_ACTOR_ID_LENGTH:
            raise InvalidArgument(
                "actor", f"must be at most {MAX_ACTOR_ID_LENGTH} characters"
            )
        if unstorable_text(self.id):
            raise InvalidArgument("actor", UNSTORABLE_TEXT)
        try:
            object.__setattr__(self, "kind", ActorKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in ActorKind)
            raise InvalidArgument(
                "actor_kind", f"{self.kind!s} is not one of {kinds}"
            ) from None

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


SYSTEM = Actor("cairnloop", ActorKind.SYSTEM)


@dataclass(frozen=True, slots=True)
class Allow:
    """An authorize hook's permission. Only the tool's own plugin can give it."""


@dataclass(frozen=True, slots=True)
class Deny:
    """An authorize hook's refusal, with a reason an operator can read."""

    reason: str
