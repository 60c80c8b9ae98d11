"""Pytest fixtures for plugin authors: a real governed environment on a
temporary SQLite file.

Installed with cairnloop-core as the pytest plugin ``cairnloop``. A plugin's
tests ask for ``cairnloop_app`` and use the ordinary facade: propose,
approve, execute, read the trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["cairnloop_app"]


@pytest.fixture
def cairnloop_app(tmp_path: Path) -> Iterator[object]:
    """A ``Cairnloop`` on a fresh, upgraded SQLite file with installed plugins."""
    from cairnloop_core.app import Cairnloop

    with Cairnloop(f"sqlite:///{tmp_path / 'cairnloop-test.db'}") as app:
        app.upgrade()
        yield app
