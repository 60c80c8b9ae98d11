"""The machine and software the figures were measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
from pathlib import Path
from typing import Any

from benchmarks.places import Postgres

__all__ = ["describe_machine", "load_average"]

PACKAGES = ("cairnloop-core", "SQLAlchemy", "psycopg", "pydantic", "procrastinate")


def describe_machine(postgres: Postgres | None) -> dict[str, Any]:
    """CPU, cores, memory, load, Python, SQLite, PostgreSQL and package versions."""
    description: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": load_average(),
        "packages": {name: _version(name) for name in PACKAGES},
    }
    if postgres is not None:
        description["postgresql"] = postgres.server_facts()
    return description


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
