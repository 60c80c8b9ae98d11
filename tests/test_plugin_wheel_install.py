"""A plugin built as a wheel and pip-installed into a fresh virtual
environment, beside a wheel of the core, is discovered by ``cairnloop``."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from plugin_dists import (
    CLI_TIMEOUT,
    PluginDist,
    build_core_wheel,
    build_wheel,
    tool_source,
)

PLUGIN = PluginDist(
    name="acme-wheel-tools",
    version="1.4.0",
    modules={
        "acme_wheel_echo": tool_source("wheel_echo", tier="read_only"),
        "acme_wheel_broken": "import acme_dependency_that_is_missing\n",
    },
    tools={"wheel_echo": "acme_wheel_echo", "wheel_broken": "acme_wheel_broken"},
)


def make_environment(root: Path) -> Path:
    """A new virtual environment that borrows this one's third-party packages.

    Its own site-packages comes first, so what pip installs there is what
    runs; this environment's folder is added after it for pydantic, pluggy
    and the rest, as ``--system-site-packages`` would add the system's.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)],
        check=True,
        timeout=CLI_TIMEOUT,
    )
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    ).stdout.strip()
    borrowed = sysconfig.get_paths()["purelib"]
    Path(purelib, "borrowed_packages.pth").write_text(
        f"import site; site.addsitedir({borrowed!r})\n"
    )
    return python


@pytest.mark.slow
def test_wheel_installed_with_pip_is_discovered_by_cairnloop(tmp_path: Path) -> None:
    wheels = [build_core_wheel(tmp_path), build_wheel(PLUGIN, tmp_path)]
    python = make_environment(tmp_path / "venv")

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            *map(str, wheels),
        ],
        check=True,
        timeout=300,
    )
    located = subprocess.run(
        [str(python), "-c", "import cairnloop_core; print(cairnloop_core.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=tmp_path,
    )
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "cairnloop"), "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=tmp_path,
    )

    assert Path(located.stdout.strip()).is_relative_to(tmp_path / "venv")
    assert done.returncode == 0, done.stderr
    listed = {record["name"]: record for record in json.loads(done.stdout)}
    assert listed["wheel_echo"] == {
        "name": "wheel_echo",
        "kind": "tool",
        "distribution": "acme-wheel-tools",
        "version": "1.4.0",
        "status": "ok",
        "error": None,
        "tools": ["wheel_echo"],
    }
    assert listed["wheel_broken"]["status"] == "failed"
    assert listed["wheel_broken"]["error"] == (
        "importing 'acme_wheel_broken' failed with ModuleNotFoundError: No module "
        "named 'acme_dependency_that_is_missing'. Install what it needs, fix it, "
        "or reinstall it."
    )
