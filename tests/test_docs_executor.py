"""The runnable examples in docs/executor.md print what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "executor.md"
EXAMPLE = re.compile(
    r"<!-- example: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)```\n"
    r"\nOutput:\n\n```text\n(?P<output>.*?)```",
    re.DOTALL,
)
EXAMPLES = {
    m["name"]: (m["code"], m["output"]) for m in EXAMPLE.finditer(PAGE.read_text())
}


def test_the_page_has_its_three_examples() -> None:
    assert sorted(EXAMPLES) == ["asyncio", "leased", "thread"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_prints_the_documented_output(name: str, tmp_path: Path) -> None:
    code, output = EXAMPLES[name]
    script = tmp_path / f"example_{name}.py"
    script.write_text(code)

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == output
