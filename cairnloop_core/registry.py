"""The loaded plugins: each one's load status, its tools, and calls into them."""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from cairnloop_core import hookspecs
from cairnloop_core.actors import Actor, Allow, Deny
from cairnloop_core.discovery import (
    ALLOW_ENV,
    BLOCK_ENV,
    POLICY_GROUP,
    TOOL_GROUP,
    Candidate,
    Selection,
    find_candidates,
)
from cairnloop_core.spec import ToolSpec

__all__ = [
    "ALLOW_ENV",
    "BLOCK_ENV",
    "NO_POLICY_DEFINED",
    "POLICY_GROUP",
    "TOOL_GROUP",
    "LoadedTool",
    "PluginRecord",
    "Registry",
    "describe_validation_error",
]

logger = logging.getLogger(__name__)

NO_POLICY_DEFINED = "no_policy_defined"
HOOK_NAMES = sorted(
    name
    for name, value in vars(hookspecs).items()
    if name.startswith("cairnloop_") and callable(value)
)


@dataclass
class PluginRecord:
    """One plugin as discovered: where it came from and whether it loaded.

    ``status`` is ``ok`` (loaded), ``failed`` (left out; ``error`` says why
    and what to do) or ``disabled`` (left out by the allow-list or
    block-list; ``error`` names the list).
    """

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
        location = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class Registry:
    """The installed tools and policies, loaded one by one in isolation.

    A plugin that cannot be used is recorded as ``failed`` with a readable
    error and left out; every other plugin still loads. Plugins are found
    once, by ``discover``; one installed later is seen by a new registry.
    """

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._records: list[PluginRecord] = []
        self._tools: dict[str, LoadedTool] = {}
        self._policy_plugins: list[str] = []

    # -- loading -------------------------------------------------------------

    @classmethod
    def discover(
        cls,
        *,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
    ) -> Registry:
        """Load every installed plugin from the ``cairnloop.*`` entry points.

        ``allow`` and ``block`` name plugins (entry point names) or whole
        distributions; when not given they come from
        ``CAIRNLOOP_PLUGINS_ALLOW`` and ``CAIRNLOOP_PLUGINS_BLOCK``
        (comma-separated). A plugin on both lists is blocked.
        """
        registry = cls()
        selection = Selection.resolve(allow, block)
        candidates, unreadable = find_candidates()

        for problem in unreadable:
            registry._fail(
                PluginRecord(
                    problem.distribution,
                    problem.kind,
                    problem.distribution,
                    problem.version,
                ),
                problem.reason,
            )

        enabled: list[Candidate] = []
        for candidate in candidates:
            reason = selection.disabled_because(candidate)
            if reason is None:
                enabled.append(candidate)
            else:
                registry._disable(candidate, reason)

        for candidate in enabled:
            rivals = [
                other
                for other in enabled
                if other.name == candidate.name and other is not candidate
            ]
            if rivals:
                registry._fail(_record(candidate), _duplicate_reason(candidate, rivals))
            else:
                registry._load(candidate)

        for entry in selection.unmatched(candidates):
            logger.warning(
                "The plugin allow-list or block-list names %r, which no installed "
                "plugin or distribution matches",
                entry,
                extra={"event": "plugin_selection_unmatched", "entry": entry},
            )
        return registry

    def register_tool(
        self,
        plugin: object,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register a tool plugin object in code; return its tool name.

        ``version`` replaces the version declared in the spec, if any.
        Raises ``PluginLoadError`` when the plugin is unusable.
        """
        from cairnloop_core.errors import PluginLoadError

        spec = getattr(plugin, "spec", None)
        name = str(getattr(spec, "name", None) or _object_name(plugin))
        try:
            tool_name = self._add_tool(name, plugin, version, None)
        except _Rejected as exc:
            raise PluginLoadError(name, distribution, str(exc)) from None
        loaded = self._tools[tool_name]
        self._records.append(
            PluginRecord(
                tool_name, "tool", distribution, loaded.spec.version, tools=[tool_name]
            )
        )
        return tool_name

    def register_policy(self, plugin: object, *, name: str) -> None:
        """Register a policy plugin object in code.

        Raises ``PluginLoadError`` when the plugin is unusable.
        """
        from cairnloop_core.errors import PluginLoadError

        try:
            self._add_policy(name, plugin)
        except _Rejected as exc:
            raise PluginLoadError(name, None, str(exc)) from None
        self._records.append(PluginRecord(name, "policy", None, None))

    def _disable(self, candidate: Candidate, reason: str) -> None:
        record = _record(candidate)
        record.status = "disabled"
        record.error = reason
        self._records.append(record)
        logger.info(
            "Plugin %r from %r is disabled: %s",
            candidate.name,
            candidate.distribution,
            reason,
            extra={"event": "plugin_disabled", "plugin": candidate.name},
        )

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status = "failed"
        record.error = reason
        self._records.append(record)
        logger.warning(
            "Skipped plugin %r from %r: %s",
            record.name,
            record.distribution,
            reason,
            extra={
                "event": "plugin_skipped",
                "plugin": record.name,
                "distribution": record.distribution,
            },
        )

    def _load(self, candidate: Candidate) -> None:
        record = _record(candidate)
        try:
            plugin = _import(candidate)
            if candidate.kind == "tool":
                name = self._add_tool(
                    candidate.name, plugin, candidate.version, candidate.name
                )
                record.tools = [name]
            else:
                self._add_policy(candidate.name, plugin)
        except _Rejected as exc:
            self._fail(record, str(exc))
            return
        except Exception as exc:
            # A plugin whose attributes raise when read must not stop the others.
            if self.plugin_manager.has_plugin(candidate.name):
                self.plugin_manager.unregister(name=candidate.name)
            self._fail(
                record,
                f"checking it raised {type(exc).__name__}: {_one_line(exc)}. "
                "Fix the plugin or reinstall it.",
            )
            return

        self._records.append(record)
        logger.debug(
            "Loaded plugin %r from %r",
            candidate.name,
            candidate.distribution,
            extra={"event": "plugin_loaded", "plugin": candidate.name},
        )

    def _add_tool(
        self,
        plugin_name: str,
        plugin: object,
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
        if version is not None:
            spec = spec.model_copy(update={"version": version})

        self._register_hooks(plugin_name, plugin)
        if not self._implements(plugin, "cairnloop_run"):
            self.plugin_manager.unregister(plugin)
            raise _Rejected(
                "it implements no cairnloop_run hook, so it could never run; "
                "add one marked with @hookimpl."
            )
        self._tools[spec.name] = LoadedTool(spec, plugin_name, plugin)
        return spec.name

    def _add_policy(self, plugin_name: str, plugin: object) -> None:
        if isinstance(getattr(plugin, "spec", None), ToolSpec):
            raise _Rejected(
                "a policy plugin cannot declare a tool spec; register the tool "
                f"under the {TOOL_GROUP!r} entry point group instead."
            )
        self._register_hooks(plugin_name, plugin)
        if self._implements(plugin, "cairnloop_run"):
            self.plugin_manager.unregister(plugin)
            raise _Rejected(
                "a policy plugin may only wrap cairnloop_run "
                "(@hookimpl(wrapper=True)), never replace a tool's run."
            )
        if not self.plugin_manager.get_hookcallers(plugin):
            self.plugin_manager.unregister(plugin)
            raise _Rejected(
                "it implements no Cairnloop hook; mark its hook functions "
                "with @hookimpl from cairnloop_core."
            )
        self._policy_plugins.append(plugin_name)

    def _register_hooks(self, plugin_name: str, plugin: object) -> None:
        manager = self.plugin_manager
        if plugin is None:
            raise _Rejected(
                "its entry point leads to None; point it at the module or object "
                "that holds the hooks."
            )
        if manager.has_plugin(plugin_name):
            raise _Rejected(
                f"another plugin is already loaded under the name {plugin_name!r}; "
                "rename one of them."
            )
        if manager.is_registered(plugin):
            raise _Rejected(
                "the same object is already loaded as plugin "
                f"{manager.get_name(plugin)!r}; point each entry point at its own "
                "module or object."
            )
        for hook_name in HOOK_NAMES:
            # pluggy skips an unmarked function silently; it would never be called.
            if callable(getattr(plugin, hook_name, None)) and (
                manager.parse_hookimpl_opts(plugin, hook_name) is None
            ):
                raise _Rejected(
                    f"its {hook_name} has no @hookimpl marker, so it would never "
                    "be called; mark it with @hookimpl from cairnloop_core."
                )
        try:
            manager.register(plugin, name=plugin_name)
        except pluggy.PluginValidationError as exc:
            raise _Rejected(_hook_mismatch(manager, plugin, exc)) from None

        for caller in manager.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            manager.unregister(plugin)
            guess = _closest_hook(caller.name)
            hint = f" Did you mean {guess!r}?" if guess else ""
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
        return sorted(self._records, key=lambda r: (r.name, r.distribution or ""))

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
            if isinstance(result, str | bytes) or not isinstance(result, Iterable):
                raise TypeError(
                    f"plugin {impl.plugin_name!r} returned scopes that are not "
                    "a list of strings"
                )
            result = list(result)
            if not all(isinstance(scope, str) for scope in result):
                raise TypeError(
                    f"plugin {impl.plugin_name!r} returned scopes that are not "
                    "a list of strings"
                )
            scopes.update(result)
        return frozenset(scopes)

    def authorize(
        self, tool: LoadedTool, actor: Actor, context: Mapping[str, Any]
    ) -> Allow | Deny:
        """Combine every participating authorize hook into one verdict.

        Only the tool's own plugin can allow; any participant can deny; a
        denial wins; an exception is a denial; nobody allowing is a denial
        with reason ``no_policy_defined``.
        """
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
                reason = verdict.reason if isinstance(verdict.reason, str) else ""
                denials.append(
                    reason.strip() or f"plugin {impl.plugin_name!r} denied the call"
                )
            elif isinstance(verdict, Allow):
                # A policy plugin's Allow is ignored: it may only deny.
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
        """Call the tool's own ``run`` through the policy plugins' wrappers.

        Every other plugin is left out of the call, so no other tool's
        ``run`` or wrapper ever sees it.
        """
        members = {tool.plugin_name, *self._policy_plugins}
        others = [
            plugin
            for name, plugin in self.plugin_manager.list_name_plugin()
            if plugin is not None and name not in members
        ]
        caller = self.plugin_manager.subset_hook_caller("cairnloop_run", others)
        # A wrapper receives the tool's result and could return another one;
        # pluggy cannot forbid that, so installed wrappers are trusted.
        return caller(tool=tool.spec, input=input, actor=actor, context=context)

    def current_scopes(self, actor: Actor) -> frozenset[str] | None:
        """The actor's current grants from a host hook, or ``None``."""
        result = self.plugin_manager.hook.cairnloop_actor_scopes(actor=actor)
        if result is None:
            return None
        return frozenset(str(s) for s in result)


def _record(candidate: Candidate) -> PluginRecord:
    return PluginRecord(
        candidate.name, candidate.kind, candidate.distribution, candidate.version
    )


def _object_name(plugin: object) -> str:
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


def _import(candidate: Candidate) -> object:
    point = candidate.point
    # The plugin's import runs in this process with no timeout: one that hangs
    # holds up discovery.
    try:
        return point.load()
    except ValidationError as exc:
        if exc.title != ToolSpec.__name__:
            raise _Rejected(
                f"importing {point.value!r} failed: {describe_validation_error(exc)}. "
                "Fix the plugin or reinstall it."
            ) from None
        raise _Rejected(
            f"its tool spec is invalid: {describe_validation_error(exc)}. "
            f"Fix the ToolSpec in {point.module!r}."
        ) from None
    except (Exception, SystemExit) as exc:
        # SystemExit too: a plugin that exits while importing must not end the host.
        raise _Rejected(
            f"importing {point.value!r} failed with {type(exc).__name__}: "
            f"{_one_line(exc)}. Install what it needs, fix it, or reinstall it."
        ) from None


def _closest_hook(name: str) -> str | None:
    # Compare without the shared prefix, or every name resembles every hook.
    prefix = "cairnloop_"
    stems = {hook.removeprefix(prefix): hook for hook in HOOK_NAMES}
    found = difflib.get_close_matches(name.removeprefix(prefix), list(stems), n=1)
    return stems[found[0]] if found else None


def _duplicate_reason(candidate: Candidate, rivals: list[Candidate]) -> str:
    what = "tool name" if candidate.kind == "tool" else "plugin name"
    sources = ", ".join(
        f"{rival.kind} plugin from {rival.distribution or 'an unnamed distribution'!r}"
        for rival in rivals
    )
    left_out = "both were" if len(rivals) == 1 else "all of them were"
    return (
        f"the {what} {candidate.name!r} is also used by the {sources}, so "
        f"{left_out} left out. Uninstall all but one, or put the distributions "
        f"to skip in {BLOCK_ENV}."
    )


def _hook_mismatch(
    manager: pluggy.PluginManager, plugin: object, error: Exception
) -> str:
    for attribute in dir(plugin):
        options = manager.parse_hookimpl_opts(plugin, attribute)
        if options is None:
            continue
        hook_name = options.get("specname") or attribute
        caller = getattr(manager.hook, hook_name, None)
        if caller is None or caller.spec is None:
            continue
        function = getattr(plugin, attribute)
        accepted = caller.spec.argnames
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            continue

        unknown = [
            p.name
            for p in parameters
            if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in accepted
        ]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            return (
                f"its {hook_name} hook takes {names}, which the hook does not "
                f"pass; name its arguments from: {', '.join(accepted)}."
            )
        wraps = options.get("wrapper") or options.get("hookwrapper")
        if wraps and not inspect.isgeneratorfunction(function):
            return (
                f"its {hook_name} hook is marked as a wrapper but does not "
                "yield; make it a generator that yields once."
            )
    return (
        f"a hook implementation does not match its spec: {_one_line(error)}. "
        "Use the argument names documented for the hook."
    )
