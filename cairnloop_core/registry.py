"""Entry-point discovery, the load status of each plugin, and calls into them."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from cairnloop_core import hookspecs
from cairnloop_core.actors import Actor, Allow, Deny
from cairnloop_core.spec import ToolSpec

__all__ = [
    "POLICY_GROUP",
    "TOOL_GROUP",
    "LoadedTool",
    "PluginRecord",
    "Registry",
    "describe_validation_error",
]

logger = logging.getLogger(__name__)

TOOL_GROUP = "cairnloop.tools"
POLICY_GROUP = "cairnloop.policies"
ALLOW_ENV = "CAIRNLOOP_PLUGINS_ALLOW"
BLOCK_ENV = "CAIRNLOOP_PLUGINS_BLOCK"
NO_POLICY_DEFINED = "no_policy_defined"


@dataclass
class PluginRecord:
    """One plugin as discovered: where it came from and whether it loaded."""

    name: str
    kind: str
    distribution: str | None
    version: str | None
    status: str = "ok"
    error: str | None = None
    tools: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "tools": list(self.tools),
        }


@dataclass(frozen=True)
class LoadedTool:
    """A tool whose plugin loaded: its spec and the plugin object behind it."""

    spec: ToolSpec
    plugin_name: str
    plugin: object


class _Rejected(Exception):
    """A plugin is unusable; the message says why and what to do."""


def describe_validation_error(error: ValidationError) -> str:
    """Turn a pydantic error into '<field>: <reason>' parts joined by '; '."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "value"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def _names_from_env(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class Registry:
    """The installed tools and policies, loaded one by one in isolation.

    A plugin that cannot be used is recorded as ``failed`` with a readable
    error and left out; every other plugin still loads.
    """

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        self._tools: dict[str, LoadedTool] = {}
        self._policy_plugins: list[str] = []
        self._run_callers: dict[str, Callable[..., Any]] = {}

    # -- loading -------------------------------------------------------------

    @classmethod
    def discover(
        cls,
        *,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
    ) -> Registry:
        """Load every installed plugin from the ``cairnloop.*`` entry points.

        ``allow`` and ``block`` name plugins (entry point names); when not
        given they come from ``CAIRNLOOP_PLUGINS_ALLOW`` and
        ``CAIRNLOOP_PLUGINS_BLOCK`` (comma-separated).
        """
        registry = cls()
        allowed = set(allow) if allow is not None else _names_from_env(ALLOW_ENV)
        blocked = set(block) if block is not None else _names_from_env(BLOCK_ENV)

        tool_points = list(entry_points(group=TOOL_GROUP))
        policy_points = list(entry_points(group=POLICY_GROUP))
        counts: dict[str, int] = {}
        for point in tool_points:
            counts[point.name] = counts.get(point.name, 0) + 1

        for point in [*tool_points, *policy_points]:
            kind = "tool" if point.group == TOOL_GROUP else "policy"
            if allowed is not None and point.name not in allowed:
                registry._record_disabled(point, kind, f"not in {ALLOW_ENV}")
            elif blocked and point.name in blocked:
                registry._record_disabled(point, kind, f"listed in {BLOCK_ENV}")
            elif kind == "tool" and counts[point.name] > 1:
                others = sorted(
                    _distribution_name(p) or "?"
                    for p in tool_points
                    if p.name == point.name and p is not point
                )
                registry._record_failed(
                    point,
                    kind,
                    f"tool name {point.name!r} is also provided by "
                    f"{', '.join(repr(o) for o in others)}; both were left out. "
                    f"Uninstall one or block it with {BLOCK_ENV}.",
                )
            else:
                registry._load_entry_point(point, kind)
        return registry

    def register_tool(self, plugin: object, *, distribution: str | None = None) -> str:
        """Register a tool plugin object in code; return its tool name.

        Raises ``PluginLoadError`` when the plugin is unusable.
        """
        from cairnloop_core.errors import PluginLoadError

        name = getattr(getattr(plugin, "spec", None), "name", None) or repr(plugin)
        try:
            return self._add_tool(str(name), plugin, distribution, None, None)
        except _Rejected as exc:
            raise PluginLoadError(str(name), distribution, str(exc)) from None

    def register_policy(self, plugin: object, *, name: str) -> None:
        """Register a policy plugin object in code.

        Raises ``PluginLoadError`` when the plugin is unusable.
        """
        from cairnloop_core.errors import PluginLoadError

        try:
            self._add_policy(name, plugin, None, None)
        except _Rejected as exc:
            raise PluginLoadError(name, None, str(exc)) from None

    def _record_disabled(self, point: EntryPoint, kind: str, why: str) -> None:
        record = self._new_record(point, kind)
        record.status = "disabled"
        record.error = why
        self.plugins[point.name] = record
        logger.info(
            "Plugin %r is disabled: %s",
            point.name,
            why,
            extra={"event": "plugin_disabled", "plugin": point.name},
        )

    def _record_failed(self, point: EntryPoint, kind: str, why: str) -> None:
        record = self._new_record(point, kind)
        record.status = "failed"
        record.error = why
        key = (
            point.name
            if point.name not in self.plugins
            else f"{point.name}@{id(point)}"
        )
        self.plugins[key] = record
        logger.warning(
            "Skipped plugin %r from %r: %s",
            point.name,
            record.distribution,
            why,
            extra={"event": "plugin_skipped", "plugin": point.name},
        )

    def _new_record(self, point: EntryPoint, kind: str) -> PluginRecord:
        dist = point.dist
        return PluginRecord(
            name=point.name,
            kind=kind,
            distribution=_distribution_name(point),
            version=dist.version if dist is not None else None,
        )

    def _load_entry_point(self, point: EntryPoint, kind: str) -> None:
        record = self._new_record(point, kind)
        try:
            try:
                plugin = point.load()
            except Exception as exc:
                raise _Rejected(
                    f"importing {point.value!r} failed with "
                    f"{type(exc).__name__}: {exc}. Fix or reinstall the plugin."
                ) from exc
            if kind == "tool":
                self._add_tool(
                    point.name, plugin, record.distribution, record.version, point.name
                )
                record.tools = [point.name]
            else:
                self._add_policy(
                    point.name, plugin, record.distribution, record.version
                )
        except _Rejected as exc:
            self._record_failed(point, kind, str(exc))
            return
        self.plugins[point.name] = record
        logger.debug(
            "Loaded plugin %r from %r",
            point.name,
            record.distribution,
            extra={"event": "plugin_loaded", "plugin": point.name},
        )

    def _add_tool(
        self,
        plugin_name: str,
        plugin: object,
        distribution: str | None,
        version: str | None,
        entry_name: str | None,
    ) -> str:
        spec = getattr(plugin, "spec", None)
        if not isinstance(spec, ToolSpec):
            raise _Rejected(
                "it has no 'spec' attribute holding a cairnloop_core.ToolSpec; "
                "declare one at the top of the plugin module."
            )
        if entry_name is not None and spec.name != entry_name:
            raise _Rejected(
                f"its entry point is named {entry_name!r} but its spec names the "
                f"tool {spec.name!r}; make the two the same."
            )
        if spec.name in self._tools:
            raise _Rejected(
                f"tool name {spec.name!r} is already registered by plugin "
                f"{self._tools[spec.name].plugin_name!r}; uninstall one or block it."
            )
        if version is not None and spec.version is None:
            spec = spec.model_copy(update={"version": version})

        self._register_hooks(plugin_name, plugin)
        if not self._implements(plugin, "cairnloop_run"):
            self.plugin_manager.unregister(plugin)
            raise _Rejected(
                "it implements no cairnloop_run hook, so it could never run; "
                "add one marked with @hookimpl."
            )

        self._tools[spec.name] = LoadedTool(spec, plugin_name, plugin)
        self._run_callers.clear()
        return spec.name

    def _add_policy(
        self,
        plugin_name: str,
        plugin: object,
        distribution: str | None,
        version: str | None,
    ) -> None:
        if isinstance(getattr(plugin, "spec", None), ToolSpec):
            raise _Rejected(
                "a policy plugin cannot declare a tool spec; register the tool "
                "under the 'cairnloop.tools' entry point group instead."
            )
        self._register_hooks(plugin_name, plugin)
        for impl in self.plugin_manager.hook.cairnloop_run.get_hookimpls():
            if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                self.plugin_manager.unregister(plugin)
                raise _Rejected(
                    "a policy plugin may only wrap cairnloop_run "
                    "(@hookimpl(wrapper=True)), never replace a tool's run."
                )
        self._policy_plugins.append(plugin_name)
        self._run_callers.clear()

    def _register_hooks(self, plugin_name: str, plugin: object) -> None:
        manager = self.plugin_manager
        try:
            manager.register(plugin, name=plugin_name)
        except pluggy.PluginValidationError as exc:
            raise _Rejected(
                f"a hook implementation does not match its spec: {exc}. "
                "Use the argument names documented for the hook."
            ) from None
        except ValueError as exc:
            raise _Rejected(f"it could not be registered: {exc}.") from None

        known = [name for name in vars(hookspecs) if name.startswith("cairnloop_")]
        for caller in manager.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            manager.unregister(plugin)
            guess = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            raise _Rejected(
                f"it implements {caller.name!r}, which is not a Cairnloop hook."
                f"{hint} Rename it or remove the @hookimpl marker."
            )

    def _implements(self, plugin: object, hook_name: str) -> bool:
        caller = getattr(self.plugin_manager.hook, hook_name)
        return any(
            impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper)
            for impl in caller.get_hookimpls()
        )

    # -- lookup --------------------------------------------------------------

    @property
    def tools(self) -> dict[str, LoadedTool]:
        """The loaded tools by name."""
        return dict(self._tools)

    def get_tool(self, name: str) -> LoadedTool | None:
        return self._tools.get(name)

    def records(self) -> list[PluginRecord]:
        """Every discovered plugin, loaded or not, sorted by name."""
        return sorted(
            self.plugins.values(), key=lambda r: (r.name, r.distribution or "")
        )

    # -- calls into plugins --------------------------------------------------

    def _participants(self, tool: LoadedTool, hook_name: str) -> list[Any]:
        caller = getattr(self.plugin_manager.hook, hook_name)
        members = {tool.plugin_name, *self._policy_plugins}
        return [
            impl
            for impl in caller.get_hookimpls()
            if impl.plugin_name in members and not (impl.wrapper or impl.hookwrapper)
        ]

    def required_scopes(self, tool: LoadedTool) -> frozenset[str]:
        """Union of the scopes the tool and every policy plugin require.

        A hook that raises or returns something other than strings makes the
        tool unusable rather than silently requiring less.
        """
        scopes: set[str] = set()
        for impl in self._participants(tool, "cairnloop_scope"):
            result = impl.function(tool=tool.spec)
            if result is None:
                continue
            if isinstance(result, str) or not all(isinstance(s, str) for s in result):
                raise TypeError(
                    f"plugin {impl.plugin_name!r} returned scopes that are not "
                    "a list of strings"
                )
            scopes.update(result)
        return frozenset(scopes)

    def authorize(
        self, tool: LoadedTool, actor: Actor, context: Mapping[str, Any]
    ) -> Allow | Deny:
        """Combine every participating authorize hook into one verdict."""
        allowed = False
        denials: list[str] = []
        for impl in self._participants(tool, "cairnloop_authorize"):
            owner = impl.plugin_name == tool.plugin_name
            try:
                verdict = impl.function(tool=tool.spec, actor=actor, context=context)
            except Exception as exc:
                logger.warning(
                    "Authorize hook of plugin %r raised %s; treated as a denial",
                    impl.plugin_name,
                    type(exc).__name__,
                    extra={
                        "event": "authorize_hook_failed",
                        "plugin": impl.plugin_name,
                    },
                )
                denials.append(
                    f"the authorization check of plugin {impl.plugin_name!r} failed"
                )
                continue
            if isinstance(verdict, Deny):
                denials.append(str(verdict.reason) or f"denied by {impl.plugin_name!r}")
            elif isinstance(verdict, Allow):
                allowed = allowed or owner
            elif verdict is not None:
                denials.append(
                    f"plugin {impl.plugin_name!r} answered the authorization check "
                    "with something other than Allow, Deny or None"
                )
        if denials:
            return Deny("; ".join(denials))
        if not allowed:
            return Deny(NO_POLICY_DEFINED)
        return Allow()

    def preview(self, tool: LoadedTool, input: BaseModel) -> str | None:
        """The tool's own preview sentence, or ``None`` when it offers none."""
        for impl in self._participants(tool, "cairnloop_preview"):
            if impl.plugin_name == tool.plugin_name:
                text = impl.function(tool=tool.spec, input=input)
                return str(text) if text is not None else None
        return None

    def run(
        self,
        tool: LoadedTool,
        input: BaseModel,
        actor: Actor,
        context: hookspecs.RunContext,
    ) -> Any:
        """Call the tool's ``run`` through any policy wrappers."""
        caller = self._run_callers.get(tool.spec.name)
        if caller is None:
            others = [
                t.plugin for name, t in self._tools.items() if name != tool.spec.name
            ]
            caller = self.plugin_manager.subset_hook_caller("cairnloop_run", others)
            self._run_callers[tool.spec.name] = caller
        return caller(tool=tool.spec, input=input, actor=actor, context=context)

    def current_scopes(self, actor: Actor) -> frozenset[str] | None:
        """The actor's current grants from a host hook, or ``None``."""
        result = self.plugin_manager.hook.cairnloop_actor_scopes(actor=actor)
        if result is None:
            return None
        return frozenset(str(s) for s in result)


def _distribution_name(point: EntryPoint) -> str | None:
    dist = point.dist
    if dist is None:
        return None
    return dist.metadata["Name"] if dist.metadata else dist.name
