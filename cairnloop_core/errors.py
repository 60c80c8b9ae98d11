"""The errors Cairnloop raises, each carrying the culprit and what to do next."""

from __future__ import annotations

__all__ = [
    "CairnloopError",
    "ConfigurationError",
    "DecisionRefused",
    "IdempotencyConflict",
    "InvalidArgument",
    "PermanentToolError",
    "PluginLoadError",
    "ProposalNotFound",
    "RetryableToolError",
    "StorageError",
]


class CairnloopError(Exception):
    """Base of every error Cairnloop raises on purpose.

    ``str(error)`` is always one readable sentence meant for the person who
    must act; no error carries a Python repr in its message.
    """


class InvalidArgument(CairnloopError, ValueError):
    """A caller passed a value Cairnloop cannot accept.

    ``field`` names the argument, ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ConfigurationError(CairnloopError):
    """The host's configuration cannot work (bad database URL, bad setting)."""


class StorageError(CairnloopError):
    """The database refused or failed an operation Cairnloop needed."""


class ProposalNotFound(CairnloopError, LookupError):
    """No proposal has the given id."""

    def __init__(self, proposal_id: object) -> None:
        self.proposal_id = proposal_id
        super().__init__(
            f"Proposal {proposal_id} does not exist; "
            "check the id with 'cairnloop inbox' or 'cairnloop show'."
        )


class DecisionRefused(CairnloopError):
    """A decision could not be applied to a proposal in its current state.

    ``status`` is the proposal's status when the decision was refused.
    """

    def __init__(self, proposal_id: int, message: str, status: str | None) -> None:
        self.proposal_id = proposal_id
        self.status = status
        super().__init__(message)


class IdempotencyConflict(CairnloopError):
    """An idempotency key was reused for a different call."""

    def __init__(self, key: str, proposal_id: int) -> None:
        self.key = key
        self.proposal_id = proposal_id
        super().__init__(
            f"Idempotency key {key!r} was already used by proposal {proposal_id} "
            "with a different tool, actor or input; use a new key for a new call."
        )


class PluginLoadError(CairnloopError):
    """One plugin could not be loaded; the others are unaffected."""

    def __init__(self, plugin: str, distribution: str | None, reason: str) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.reason = reason
        source = f" from {distribution!r}" if distribution else ""
        super().__init__(f"Plugin {plugin!r}{source} was left out: {reason}")


class RetryableToolError(CairnloopError):
    """Raised by a tool's ``run`` for a failure worth another attempt.

    ``retry_after`` (seconds) overrides the executor's backoff when given.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentToolError(CairnloopError):
    """Raised by a tool's ``run`` for a failure no retry can fix."""
