"""A handler for the process executor's tracing test. In a worker process (not in the
parent that loads it too) it installs a tracer provider at import, the way
docs/tracing.md tells users to: its spans go, one JSON line each, to the file named by
PARAFKA_TEST_SPANS. The handler opens a span of its own and returns, as its output, that
span's trace id and its parent's span id."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from parafka import Record


class _JsonLines(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            parent = span.parent
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": f"{span.context.trace_id:032x}",
                        "span_id": f"{span.context.span_id:016x}",
                        "parent": None if parent is None else f"{parent.span_id:016x}",
                        "kind": span.kind.name,
                        "attributes": dict(span.attributes or {}),
                        "pid": os.getpid(),
                    }
                )
            )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


if multiprocessing.parent_process() is not None and os.environ.get("PARAFKA_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_JsonLines(os.environ["PARAFKA_TEST_SPANS"])))
    trace.set_tracer_provider(provider)

tracer = trace.get_tracer("tests.handlers.traced")


def handle(record: Record) -> str:
    with tracer.start_as_current_span("user work") as span:
        parent = getattr(span, "parent", None)
        return json.dumps(
            {
                "offset": record.offset,
                "trace_id": f"{span.get_span_context().trace_id:032x}",
                "parent": None if parent is None else f"{parent.span_id:016x}",
                "pid": os.getpid(),
            }
        )
