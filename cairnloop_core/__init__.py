"""Cairnloop: governed tools for AI agents and operators.

Names are imported on first use, so a plugin that needs only the contract
(``ToolSpec``, ``hookimpl``, ``Allow``) does not pay for the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from cairnloop_core.spec import (
        ApprovalMode,
        RiskTier,
        ToolSpec,
        derive_approval_mode,
    )


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

_HOMES = {
    "actors": ("SYSTEM", "Actor", "ActorKind", "Allow", "Deny"),
    "app": ("Cairnloop",),
    "errors": (
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
    ),
    "hookspecs": ("RunContext", "hookimpl"),
    "proposals": ("Event", "Outcome", "Proposal", "ProposalStatus", "ProposeResult"),
    "registry": ("Registry",),
    "settings": ("Settings",),
    "spec": ("ApprovalMode", "RiskTier", "ToolSpec", "derive_approval_mode"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'cairnloop_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cairnloop_core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
