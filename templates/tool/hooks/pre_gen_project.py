"""Stops generation with one readable line when an answer cannot make a tool."""

from __future__ import annotations

import re
import sys

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_TOOL_NAME = 64
RISK_TIERS = ("read_only", "low_write", "high_write", "destructive")
LIMITS = {"tool_title": 200, "description": 4000, "author": 200}

ANSWERS = {
    "tool_name": {{ cookiecutter.tool_name | literal }},
    "tool_title": {{ cookiecutter.tool_title | literal }},
    "description": {{ cookiecutter.description | literal }},
    "risk_tier": {{ cookiecutter.risk_tier | literal }},
    "author": {{ cookiecutter.author | literal }},
}
DERIVED_NAME = {{ cookiecutter.__tool | literal }}


def name_problem(name: str, derived: str) -> str | None:
    """What keeps the tool name from becoming an identifier, if anything."""
    if not name.strip():
        return "tool_name: is empty; give the tool a name such as 'Refund order'."
    if not derived:
        return (
            f"tool_name: {name!r} has no letters or digits to make a tool name "
            "from; use words such as 'Refund order'."
        )
    if not TOOL_NAME.match(derived):
        return (
            f"tool_name: {name!r} becomes {derived!r}, which does not start with "
            "a letter; start the name with a word, as in 'Refund order 2'."
        )
    if len(derived) > MAX_TOOL_NAME:
        return (
            f"tool_name: {name!r} becomes a tool name of {len(derived)} "
            f"characters; keep it to {MAX_TOOL_NAME}."
        )
    return None


def text_problem(field: str, value: str) -> str | None:
    """Why a free-text answer cannot go into the spec or pyproject, if it cannot."""
    if field != "author" and not value.strip():
        return f"{field}: is empty; write a short text for it."
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return f"{field}: must be one line without control characters."
    if len(value) > LIMITS[field]:
        return f"{field}: is {len(value)} characters long; keep it to {LIMITS[field]}."
    return None


def first_problem() -> str | None:
    """The first answer that cannot make a working tool, described for its author."""
    problem = name_problem(ANSWERS["tool_name"], DERIVED_NAME)
    if problem:
        return problem
    for field in LIMITS:
        problem = text_problem(field, ANSWERS[field])
        if problem:
            return problem
    if ANSWERS["risk_tier"] not in RISK_TIERS:
        return (
            f"risk_tier: {ANSWERS['risk_tier']!r} is not a risk tier; "
            f"use one of {', '.join(RISK_TIERS)}."
        )
    return None


problem = first_problem()
if problem:
    print(f"Error: {problem}", file=sys.stderr)
    sys.exit(1)
