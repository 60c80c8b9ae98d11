"""Cairnloop: governed tools for AI agents and operators."""

from cairnloop_core.actors import SYSTEM, Actor, ActorKind, Allow, Deny
from cairnloop_core.app import Cairnloop
from cairnloop_core.errors import (
    CairnloopError,
    ConfigurationError,
    DecisionRefused,
    IdempotencyConflict,
    InvalidArgument,
    PermanentToolError,
    PluginLoadError,
    ProposalNotFound,
    RetryableToolError,
    StorageError,
)
from cairnloop_core.hookspecs import RunContext, hookimpl
from cairnloop_core.proposals import (
    Event,
    Outcome,
    Proposal,
    ProposalStatus,
    ProposeResult,
)
from cairnloop_core.registry import Registry
from cairnloop_core.settings import Settings
from cairnloop_core.spec import ApprovalMode, RiskTier, ToolSpec, derive_approval_mode

__all__ = [
    "SYSTEM",
    "Actor",
    "ActorKind",
    "Allow",
    "ApprovalMode",
    "Cairnloop",
    "CairnloopError",
    "ConfigurationError",
    "DecisionRefused",
    "Deny",
    "Event",
    "IdempotencyConflict",
    "InvalidArgument",
    "Outcome",
    "PermanentToolError",
    "PluginLoadError",
    "Proposal",
    "ProposalNotFound",
    "ProposalStatus",
    "ProposeResult",
    "Registry",
    "RetryableToolError",
    "RiskTier",
    "RunContext",
    "Settings",
    "StorageError",
    "ToolSpec",
    "derive_approval_mode",
    "hookimpl",
]

__version__ = "0.1.0"
