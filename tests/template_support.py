"""Rendering the tool template in tests, with cookiecutter's own files kept in
the test's temporary folder rather than the home directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "templates" / "tool"


def cookiecutter_config(folder: Path) -> Path:
    """A cookiecutter config that keeps replay files and clones in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {folder / 'cookiecutters'}\n"
        f"replay_dir: {folder / 'replay'}\n"
    )
    return config


def render_tool(output_dir: Path, **answers: Any) -> Path:
    """Render the template without prompts and return the generated folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    config = cookiecutter_config(output_dir.parent / f"{output_dir.name}-config")
    result = cookiecutter(
        str(TEMPLATE),
        no_input=True,
        extra_context=answers,
        output_dir=str(output_dir),
        config_file=str(config),
    )
    return Path(result)
