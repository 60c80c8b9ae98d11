"""Throwaway plugin distributions that are really installed: a site folder
with ``*.dist-info`` metadata and module sources, seen by ``importlib`` in
this process and by subprocesses through ``PYTHONPATH``; or a wheel built
from the same description."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "CLI_TIMEOUT",
    "PluginDist",
    "PluginSite",
    "build_core_wheel",
    "build_wheel",
    "healthy_tool",
    "run_cairnloop",
    "tool_source",
]

REPOSITORY = Path(__file__).resolve().parent.parent
CLI_TIMEOUT = 120
SELECTION_VARIABLES = ("CAIRNLOOP_PLUGINS_ALLOW", "CAIRNLOOP_PLUGINS_BLOCK")


@dataclass
class PluginDist:
    """One distribution: its name, version, modules and entry points.

    ``tools`` and ``policies`` map entry point names to values
    (``module`` or ``module:object``). ``entry_points_text`` replaces the
    generated ``entry_points.txt`` verbatim, to install a malformed one.
    """

    name: str
    modules: Mapping[str, str]
    version: str = "1.0.0"
    tools: Mapping[str, str] = field(default_factory=dict)
    policies: Mapping[str, str] = field(default_factory=dict)
    entry_points_text: str | None = None

    def entry_points(self) -> str:
        if self.entry_points_text is not None:
            return self.entry_points_text
        sections = []
        for group, points in (
            ("cairnloop.tools", self.tools),
            ("cairnloop.policies", self.policies),
        ):
            if points:
                lines = "".join(f"{k} = {v}\n" for k, v in points.items())
                sections.append(f"[{group}]\n{lines}")
        return "\n".join(sections)

    def metadata(self) -> str:
        return (
            "Metadata-Version: 2.1\n"
            f"Name: {self.name}\n"
            f"Version: {self.version}\n"
            "Summary: A throwaway Cairnloop plugin for the test suite.\n"
        )


class PluginSite:
    """A folder on ``sys.path`` that distributions are installed into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._modules: set[str] = set()

    def install(self, *dists: PluginDist) -> None:
        """Write each distribution's modules and ``.dist-info`` folder."""
        for dist in dists:
            folder = re.sub(r"[-_.]+", "_", dist.name)
            info = self.root / f"{folder}-{dist.version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(dist.metadata())
            (info / "entry_points.txt").write_text(dist.entry_points())
            (info / "INSTALLER").write_text("cairnloop-tests\n")
            for module, source in dist.modules.items():
                path = self.root / f"{module.replace('.', '/')}.py"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(textwrap.dedent(source))
                self._modules.add(module)
        # Directory listings are cached by mtime, which may not have moved yet.
        importlib.invalidate_caches()

    def forget_modules(self) -> None:
        """Drop the site's modules from ``sys.modules`` so nothing leaks on."""
        for module in self._modules:
            sys.modules.pop(module, None)

    def env(self, **variables: str) -> dict[str, str]:
        """An environment for a subprocess that sees this site's plugins."""
        env = {k: v for k, v in os.environ.items() if k not in SELECTION_VARIABLES}
        existing = env.get("PYTHONPATH")
        env["PYTHONPATH"] = (
            f"{self.root}{os.pathsep}{existing}" if existing else str(self.root)
        )
        env.update(variables)
        return env

    @classmethod
    def activated(
        cls, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[PluginSite]:
        """Put a new site first on ``sys.path`` for one test, with no
        allow-list or block-list in the environment."""
        site = cls(root)
        for variable in SELECTION_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.syspath_prepend(str(root))
        try:
            yield site
        finally:
            site.forget_modules()


def tool_source(
    name: str,
    *,
    tier: str | None = "low_write",
    spec_fields: str = "",
    scopes: tuple[str, ...] = (),
    authorize: str = "return Allow()",
    run: str | None = "return {'ran': tool.name, 'text': input.text}",
    extra: str = "",
) -> str:
    """The source of a small, valid tool module; parts can be swapped.

    ``tier=None`` leaves the risk tier out, ``run=None`` the run hook;
    ``spec_fields`` adds keyword arguments to the spec, ``extra`` adds
    top-level source at the end.
    """
    tier_line = f"risk_tier={tier!r}," if tier is not None else ""
    run_hook = (
        "@hookimpl\ndef cairnloop_run(tool, input, actor, context):\n"
        f"    CALLS.append(tool.name)\n    {run}\n"
        if run is not None
        else ""
    )
    return f"""
from pydantic import BaseModel, Field

from cairnloop_core import Allow, Deny, ToolSpec, hookimpl


class Input(BaseModel):
    text: str = Field(min_length=1, max_length=100)


spec = ToolSpec(
    name={name!r},
    title="Throwaway tool {name}",
    description="A tool that exists only for the test suite.",
    {tier_line}
    input_model=Input,
    {spec_fields}
)

CALLS = []


@hookimpl
def cairnloop_scope(tool):
    return {list(scopes)!r}


@hookimpl
def cairnloop_authorize(tool, actor, context):
    {authorize}



{run_hook}
{textwrap.dedent(extra)}
"""


def healthy_tool(name: str, *, distribution: str | None = None) -> PluginDist:
    """A distribution with one valid tool whose module is named after it."""
    module = f"{name}_plugin"
    return PluginDist(
        name=distribution or f"{name.replace('_', '-')}-dist",
        modules={module: tool_source(name)},
        tools={name: module},
    )


def run_cairnloop(
    *args: str, env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``cairnloop`` command and wait for it to exit."""
    command = Path(sys.executable).with_name("cairnloop")
    return subprocess.run(
        [str(command), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def build_wheel(dist: PluginDist, workdir: Path) -> Path:
    """Build a wheel of ``dist`` with the standard build front end."""
    project = workdir / f"{dist.name}-project"
    project.mkdir(parents=True)
    modules = sorted(dist.modules)
    for module, source in dist.modules.items():
        (project / f"{module}.py").write_text(textwrap.dedent(source))
    entry_groups = ""
    for group, points in (
        ("cairnloop.tools", dist.tools),
        ("cairnloop.policies", dist.policies),
    ):
        if points:
            lines = "".join(f'{k} = "{v}"\n' for k, v in points.items())
            entry_groups += f'\n[project.entry-points."{group}"]\n{lines}'
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist.name}"\nversion = "{dist.version}"\n'
        'dependencies = ["cairnloop-core"]\n'
        f"{entry_groups}\n[tool.setuptools]\npy-modules = {modules!r}\n"
    )
    return _build(project, workdir / "wheels")


def build_core_wheel(workdir: Path) -> Path:
    """Build a wheel of cairnloop-core from a copy of this repository's source."""
    source = workdir / "cairnloop-core-source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPOSITORY / name, source / name)
    shutil.copytree(
        REPOSITORY / "cairnloop_core",
        source / "cairnloop_core",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return _build(source, workdir / "wheels")


def _build(project: Path, outdir: Path) -> Path:
    before = set(outdir.glob("*.whl")) if outdir.exists() else set()
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = set(outdir.glob("*.whl")) - before
    return wheel
