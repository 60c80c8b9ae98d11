"""Runs two proposals through the executor in a fresh process and prints, as
JSON, what OpenTelemetry saw; with ``--hide-otel`` the API is made
unimportable first, as on a host without it.

Usage: python telemetry_probe.py DATABASE_URL [--hide-otel]
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main(database_url: str, hide: bool) -> dict[str, Any]:
    if hide:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
        exporter = reader = None
    else:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from executor_support import Apps, InlineTool, approved, registry_with, tool_spec

    from cairnloop_core import PermanentToolError
    from cairnloop_core.telemetry import otel_available

    def traced_call(input: Any, context: Any) -> dict[str, str]:
        if not hide:
            from opentelemetry import trace

            with trace.get_tracer("probe").start_as_current_span("probe.call"):
                pass
        return {"ok": input.text}

    def refuse(input: Any, context: Any) -> None:
        raise PermanentToolError("the ticket is closed")

    apps = Apps(database_url)
    app = apps.open(
        registry_with(
            InlineTool(tool_spec("works", timeout_seconds=5), traced_call),
            InlineTool(tool_spec("refuses", transactional=True), refuse),
        )
    )
    first = approved(app, "works", {"text": "hi"})
    second = approved(app, "refuses", {"text": "hi"})
    app.drain()
    report: dict[str, Any] = {
        "otel_available": otel_available(),
        "statuses": [app.get(first).status.value, app.get(second).status.value],
    }
    apps.close()

    if exporter is not None and reader is not None:
        report["spans"] = [
            {
                "name": span.name,
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
                "description": span.status.description,
                "span_id": span.context.span_id,
                "parent_id": span.parent.span_id if span.parent else None,
            }
            for span in exporter.get_finished_spans()
        ]
        counts = {}
        data = reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "cairnloop.lifecycle.events":
                        continue
                    for point in metric.data.data_points:
                        key = f"{point.attributes['event']}/{point.attributes['tool']}"
                        counts[key] = point.value
        report["counts"] = counts
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], "--hide-otel" in sys.argv[2:])))
