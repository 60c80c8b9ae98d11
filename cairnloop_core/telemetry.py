"""Logs, OpenTelemetry counters and spans, emitted after the facts they report.

OpenTelemetry is optional: with ``opentelemetry-api`` installed, Cairnloop
counts lifecycle events and traces runs; without it these calls do nothing
and cost next to nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["SpanHandle", "otel_available", "record", "span"]

logger = logging.getLogger("cairnloop_core.events")

metrics: Any
trace: Any
try:
    from opentelemetry import metrics, trace
except ImportError:  # exercised by a test that hides the package
    metrics = None
    trace = None

COUNTER_NAME = "cairnloop.lifecycle.events"
SCOPE_NAME = "cairnloop"

_counter: Any = None
_tracer: Any = None


def otel_available() -> bool:
    """Whether the OpenTelemetry API is importable in this process."""
    return trace is not None and metrics is not None


def _instruments() -> tuple[Any, Any]:
    # The API hands out proxies until the host installs its providers, so
    # creating the instruments early still reaches providers set up later.
    global _counter, _tracer
    if not otel_available():
        return None, None
    if _counter is None:
        meter = metrics.get_meter(SCOPE_NAME)
        _counter = meter.create_counter(
            COUNTER_NAME,
            description="Committed lifecycle events, by event name and tool.",
        )
        _tracer = trace.get_tracer(SCOPE_NAME)
    return _counter, _tracer


def _attribute(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def record(event: str, **attributes: Any) -> None:
    """Report a lifecycle event that has already committed.

    Logs one line with ``extra={"event": event, ...}`` and adds one to the
    ``cairnloop.lifecycle.events`` counter, labelled with the event name and
    the tool.
    """
    details = " ".join(f"{k}={v}" for k, v in attributes.items() if v is not None)
    logger.info("%s %s", event, details, extra={"event": event, **attributes})
    counter, _ = _instruments()
    if counter is not None:
        counter.add(1, {"event": event, "tool": str(attributes.get("tool") or "")})


class SpanHandle:
    """The current span, or nothing when OpenTelemetry is not installed."""

    def __init__(self, current: Any = None) -> None:
        self._span = current

    def set(self, key: str, value: Any) -> None:
        """Set an attribute on the span; values that are not scalars are skipped."""
        if self._span is not None and _attribute(value):
            self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        """Mark the span as failed with a readable description."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, description))


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[SpanHandle]:
    """Trace a block as an OpenTelemetry span when the API is installed."""
    _, tracer = _instruments()
    if tracer is None:
        yield SpanHandle()
        return
    clean = {k: v for k, v in attributes.items() if _attribute(v)}
    with tracer.start_as_current_span(name, attributes=clean) as current:
        yield SpanHandle(current)
