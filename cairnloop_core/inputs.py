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
    "UNSTORABLE_TEXT",
    "canonical_json",
    "field_errors",
    "hash_input",
    "masked_input",
    "preview_fallback",
    "stored_input",
    "unstorable_text",
]

MASK = "********"
UNSTORABLE_TEXT = (
    "must not hold NUL characters or unpaired surrogates, which cannot be "
    "stored; remove them"
)


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
    it never goes to events, logs or previews. Secrets are stored in the
    clear in that row, so the database must be protected like the secrets.
    """
    return _plain(model)


def _plain_numbers(value: Any) -> Any:
    # PostgreSQL's jsonb reads 1e16 back as the integer 10000000000000000 and
    # -0.0 as 0.0; writing whole floats as integers keeps a hash stable across
    # a round trip through either database.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_numbers(v) for v in value]
    return value


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces, the same bytes for equal data.

    Whole floats are written as integers. Raises ``ValueError`` for NaN or
    infinity, which neither JSON nor PostgreSQL can store, and ``TypeError``
    for values that are not JSON.
    """
    return json.dumps(
        _plain_numbers(data),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def unstorable_text(value: Any) -> bool:
    """Whether ``value`` holds text no database can keep, at any depth.

    That is a NUL character, which PostgreSQL refuses in text and jsonb, or an
    unpaired surrogate (from a ``"\\ud800"`` escape or undecodable bytes in
    an argument), which UTF-8 cannot encode.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, Mapping):
        return any(unstorable_text(k) or unstorable_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(unstorable_text(v) for v in value)
    return False


def hash_input(data: Any) -> str:
    """SHA-256 of the canonical JSON form of ``data``."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _is_secret(model_type: type[BaseModel], name: str, value: Any) -> bool:
    if isinstance(value, SecretStr | SecretBytes):
        return True
    extra = model_type.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("secret"))


def _mask(model: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if name not in data or data[name] is None:
            continue
        if _is_secret(type(model), name, value):
            data[name] = MASK
        elif isinstance(value, BaseModel) and isinstance(data[name], dict):
            _mask(value, data[name])
        elif isinstance(value, list | tuple) and isinstance(data[name], list):
            for item, dumped in zip(value, data[name], strict=False):
                if isinstance(item, BaseModel) and isinstance(dumped, dict):
                    _mask(item, dumped)
    return data


def masked_input(model: BaseModel) -> dict[str, Any]:
    """The input with secret fields replaced by a mask, safe to show anyone.

    A field is secret when its value is a pydantic ``SecretStr`` or
    ``SecretBytes`` or when it is declared with
    ``Field(json_schema_extra={"secret": True})``, at any depth of nested
    models and lists of models.
    """
    return _mask(model, model.model_dump(mode="json"))


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
