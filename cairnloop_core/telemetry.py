"""Logs, OpenTelemetry counters and spans, emitted after the facts they report.

OpenTelemetry is optional: with ``opentelemetry-api`` installed, Cairnloop
counts lifecycle events and traces runs; without it these calls do nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["record", "span"]

logger = logging.getLogger("cairnloop_core.events")

metrics: Any
trace: Any
try:
    from opentelemetry import metrics, trace
except ImportError:  # pragma: no cover - exercised when the extra is absent
    metrics = None
    trace = None

_counter: Any = None
_tracer: Any = None


def _instruments() -> tuple[Any, Any]:
    global _counter, _tracer
    if metrics is None or trace is None:
        return None, None
    if _counter is None:
        meter = metrics.get_meter("cairnloop")
        _counter = meter.create_counter(
            "cairnloop.lifecycle.events",
            description="Committed lifecycle events, by event name and tool.",
        )
        _tracer = trace.get_tracer("cairnloop")
    return _counter, _tracer


def record(event: str, **attributes: Any) -> None:
    """Report a lifecycle event that has already committed.

    Logs one line with ``extra={"event": event, ...}`` and adds one to the
    ``cairnloop.lifecycle.events`` counter.
    """
    details = " ".join(f"{k}={v}" for k, v in attributes.items() if v is not None)
    logger.info("%s %s", event, details, extra={"event": event, **attributes})
    counter, _ = _instruments()
    if counter is not None:
        counter.add(1, {"event": event, "tool": str(attributes.get("tool", ""))})


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """Trace a block as an OpenTelemetry span when the API is installed."""
    _, tracer = _instruments()
    if tracer is None:
        yield
        return
    clean = {
        k: v for k, v in attributes.items() if isinstance(v, str | int | float | bool)
    }
    with tracer.start_as_current_span(name, attributes=clean):
        yield
