"""Jinja filters the tool template needs beyond cookiecutter's own."""

from __future__ import annotations

import json

from cookiecutter.utils import simple_filter


@simple_filter
def literal(value: object) -> str:
    """Quote an answer as a double-quoted string valid in Python and in TOML.

    JSON's escapes (quotes, backslashes, control characters) are a subset of
    both languages', so an answer such as ``Don't "refund" twice`` cannot
    break the generated code.
    """
    return json.dumps(str(value), ensure_ascii=False)
