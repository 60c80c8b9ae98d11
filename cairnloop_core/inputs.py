"""A tool input's validation, canonical form, hash, and secret-free views."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

__all__ = [
    "canonical_json",
    "field_errors",
    "hash_input",
    "masked_input",
    "preview_fallback",
    "stored_input",
]

MASK = "********"


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        secret = value.get_secret_value()
        return secret.decode() if isinstance(secret, bytes) else secret
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


def stored_input(model: BaseModel) -> dict[str, Any]:
    """The validated input as plain JSON data, secrets included.

    This is what the proposal row keeps so the executor can run the call;
    it never goes to events, logs or previews.
    """
    return _plain(model)


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces, the same bytes for equal data."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_input(data: Any) -> str:
    """SHA-256 of the canonical JSON form of ``data``."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _secret_fields(model_type: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model_type.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret"):
            names.add(name)
        if info.annotation in (SecretStr, SecretBytes):
            names.add(name)
    return names


def masked_input(model: BaseModel) -> dict[str, Any]:
    """The input with secret fields replaced by a mask, safe to show anyone."""
    data = model.model_dump(mode="json")
    for name in _secret_fields(type(model)):
        if name in data and data[name] is not None:
            data[name] = MASK
    return data


def preview_fallback(title: str, model: BaseModel, limit: int = 200) -> str:
    """A readable one-line summary used when a tool offers no preview."""
    parts = []
    for key, value in masked_input(model).items():
        text = value if isinstance(value, str) else canonical_json(value)
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        parts.append(f"{key}={text}")
    return f"{title}: " + (", ".join(parts) if parts else "no input")


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Per-field errors an operator or agent can read: field and reason."""
    result = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(p) for p in item["loc"]) or "input"
        result.append({"field": location, "reason": item["msg"]})
    return result
