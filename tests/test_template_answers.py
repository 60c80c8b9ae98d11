"""The tool template's answers: the names it derives, the code it writes, and
the one readable line that stops it when an answer cannot make a tool."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from template_support import TEMPLATE, cookiecutter_config, render_tool

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"


def spec_keywords(tool_file: Path) -> dict[str, object]:
    """The literal keyword arguments of the ``ToolSpec(...)`` call in tool.py."""
    tree = ast.parse(tool_file.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "ToolSpec"
        ):
            return {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg and isinstance(k.value, ast.Constant)
            }
    raise AssertionError(f"{tool_file} declares no ToolSpec")


@pytest.mark.parametrize(
    ("answer", "tool"),
    [
        ("Refund Order!", "refund_order"),
        ("  look UP   customer ", "look_up_customer"),
        ("Rückerstattung prüfen", "ruckerstattung_prufen"),
        ("close-account (v2)", "close_account_v2"),
    ],
)
def test_a_tool_name_in_words_becomes_tool_distribution_and_module_names(
    tmp_path: Path, answer: str, tool: str
) -> None:
    distribution = "cairnloop-" + tool.replace("_", "-")
    module = f"cairnloop_{tool}"

    generated = render_tool(tmp_path / "out", tool_name=answer)

    assert generated.name == distribution
    pyproject = tomllib.loads((generated / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == distribution
    assert pyproject["project"]["entry-points"]["cairnloop.tools"] == {
        tool: f"{module}.tool"
    }
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["include"] == [
        f"{module}*"
    ]
    assert spec_keywords(generated / module / "tool.py")["name"] == tool
    assert (generated / "tests" / f"test_{tool}.py").is_file()


def test_quotes_backslashes_and_accents_in_answers_stay_plain_text(
    tmp_path: Path,
) -> None:
    title = 'Don\'t "refund" twice \\ é'
    description = 'Gives the money back — once; "twice" is a bug.'
    author = 'Zoë "Z" O\'Neil'

    generated = render_tool(
        tmp_path / "out",
        tool_name="Refund order",
        tool_title=title,
        description=description,
        author=author,
    )

    keywords = spec_keywords(generated / "cairnloop_refund_order" / "tool.py")
    assert (keywords["title"], keywords["description"]) == (title, description)
    project = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    assert project["description"] == description
    assert project["authors"] == [{"name": author}]


def test_a_blank_author_is_left_out_of_the_distribution(tmp_path: Path) -> None:
    generated = render_tool(tmp_path / "out", tool_name="Refund order", author="  ")

    project = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    assert "authors" not in project


@pytest.mark.parametrize(
    "tier", ["read_only", "low_write", "high_write", "destructive"]
)
def test_generated_code_is_lint_clean_and_formatted_for_each_tier(
    tmp_path: Path, tier: str
) -> None:
    generated = render_tool(
        tmp_path / "out",
        tool_name="Refund order",
        description="Give a customer's money back.",
        risk_tier=tier,
    )

    rules = "E,F,W,I,B,UP,SIM,RUF"
    lint = subprocess.run(
        [RUFF, "check", "--isolated", "--select", rules, "."],
        cwd=generated,
        capture_output=True,
        text=True,
    )
    form = subprocess.run(
        [RUFF, "format", "--isolated", "--check", "."],
        cwd=generated,
        capture_output=True,
        text=True,
    )
    keywords = spec_keywords(generated / "cairnloop_refund_order" / "tool.py")
    assert lint.returncode == 0, lint.stdout
    assert form.returncode == 0, form.stdout
    assert keywords["risk_tier"] == tier


BAD_ANSWERS = [
    (
        {"tool_name": ""},
        "Error: tool_name: is empty; give the tool a name such as 'Refund order'.",
    ),
    (
        {"tool_name": "   "},
        "Error: tool_name: is empty; give the tool a name such as 'Refund order'.",
    ),
    (
        {"tool_name": "123"},
        "Error: tool_name: '123' becomes '123', which does not start with a "
        "letter; start the name with a word, as in 'Refund order 2'.",
    ),
    (
        {"tool_name": "!!!"},
        "Error: tool_name: '!!!' has no letters or digits to make a tool name "
        "from; use words such as 'Refund order'.",
    ),
    (
        {"tool_name": "refund " * 10},
        f"Error: tool_name: {'refund ' * 10!r} becomes a tool name of 69 "
        "characters; keep it to 64.",
    ),
    (
        {"tool_name": "Refund order", "tool_title": " "},
        "Error: tool_title: is empty; write a short text for it.",
    ),
    (
        {"tool_name": "Refund order", "description": "first line\nsecond line"},
        "Error: description: must be one line without control characters.",
    ),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS)
def test_an_answer_that_cannot_make_a_tool_stops_generation_with_one_line(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    answers: dict[str, str],
    message: str,
) -> None:
    output = tmp_path / "out"

    with pytest.raises(FailedHookException):
        render_tool(output, **answers)

    errors = [line for line in capfd.readouterr().err.splitlines() if "Error" in line]
    assert errors == [message]
    assert list(output.iterdir()) == []


def test_an_unknown_tier_given_as_an_answer_is_refused_before_generation(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"

    with pytest.raises(ValueError) as refused:
        render_tool(output, tool_name="Refund order", risk_tier="dangerous")

    assert str(refused.value) == (
        "dangerous provided for choice variable risk_tier, but the choices are "
        "['low_write', 'read_only', 'high_write', 'destructive']."
    )
    assert list(output.iterdir()) == []


def test_an_unknown_tier_in_a_replayed_answer_file_stops_the_hook(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = cookiecutter_config(tmp_path / "config")
    first = tmp_path / "first"
    cookiecutter(
        str(TEMPLATE),
        no_input=True,
        extra_context={"tool_name": "Refund order"},
        output_dir=str(first),
        config_file=str(config),
    )
    replay = tmp_path / "config" / "replay" / f"{TEMPLATE.name}.json"
    answers = json.loads(replay.read_text())
    answers["cookiecutter"]["risk_tier"] = "dangerous"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(answers))
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE),
            replay=str(edited),
            output_dir=str(output),
            config_file=str(config),
        )

    errors = [line for line in capfd.readouterr().err.splitlines() if "Error" in line]
    assert errors == [
        "Error: risk_tier: 'dangerous' is not a risk tier; use one of read_only, "
        "low_write, high_write, destructive."
    ]
    assert list(output.iterdir()) == []


def test_the_cookiecutter_command_stops_with_the_hooks_line_and_exit_1(
    tmp_path: Path,
) -> None:
    command = shutil.which("cookiecutter", path=str(Path(sys.executable).parent))
    assert command is not None
    config = cookiecutter_config(tmp_path / "config")
    output = tmp_path / "out"
    output.mkdir()

    result = subprocess.run(
        [
            command,
            "--no-input",
            "--config-file",
            str(config),
            "--output-dir",
            str(output),
            str(TEMPLATE),
            "tool_name=!!!",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr == (
        "Error: tool_name: '!!!' has no letters or digits to make a tool name "
        "from; use words such as 'Refund order'.\n"
    )
    assert list(output.iterdir()) == []
