"""Tracing end to end on the local broker: the attempt span continues the producer's
trace, the handler's own spans are its children in the thread, asyncio and process
executors, outputs and dead letters carry the context on, and "ack" and "commit" spans
follow each sampled attempt. Off, nothing is traced and OpenTelemetry is not imported."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from parafka import Record, RetryPolicy
from parafka.testing import Broker

from ..otel import PARENT_ID, TRACE_ID, TRACEPARENT, exporter, named
from .helpers import consumer

COUNT = 6
ROOT = Path(__file__).resolve().parents[2]


def _group() -> str:
    return "g-" + uuid.uuid4().hex[:8]


def _source(broker: Broker, name: str) -> str:
    topic = broker.new_topic(name, 2)
    broker.produce(
        topic,
        [(b"k%d" % i, b"v%d" % i) for i in range(COUNT)],
        headers=[("traceparent", TRACEPARENT.encode())],
    )
    return topic


def _context(message: Any) -> str | None:
    for name, value in message.headers() or ():
        if name == "traceparent":
            return str(value.decode())
    return None


def _traceparent(span: ReadableSpan) -> str:
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


def _check_attempts(attempts: list[ReadableSpan], topic: str, group: str) -> None:
    assert len(attempts) == COUNT
    for span in attempts:
        attributes = dict(span.attributes or {})
        assert span.name == f"process {topic}" and span.kind is SpanKind.CONSUMER
        assert span.context.trace_id == TRACE_ID
        assert span.parent is not None and span.parent.span_id == PARENT_ID
        assert attributes["messaging.system"] == "kafka"
        assert attributes["messaging.destination.name"] == topic
        assert attributes["messaging.consumer.group.name"] == group
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["parafka.attempt"] == 1
        key = attributes["messaging.kafka.message.key"]
        assert key == f"k{attributes['messaging.kafka.offset']}" or str(key).startswith("k")
    offsets = sorted((s.attributes or {})["messaging.destination.partition.id"] for s in attempts)
    assert set(offsets) <= {"0", "1"}


def _check_followers(spans: tuple[ReadableSpan, ...], attempts: list[ReadableSpan]) -> None:
    """Every attempt has an "ack" (it had outputs) and a "commit" child."""
    ids = {s.context.span_id for s in attempts}
    for name in ("ack", "commit"):
        children = named(spans, name + " ")
        assert {s.parent.span_id for s in children if s.parent} == ids, name
        assert all(s.context.trace_id == TRACE_ID for s in children)


@pytest.mark.parametrize("kind", ["thread", "async"])
def test_spans_per_attempt_with_the_handlers_spans_inside(broker: Broker, kind: str) -> None:
    spans = exporter()
    topic = _source(broker, "trace-" + kind)
    out = broker.new_topic("trace-out-" + kind, 1)
    group = _group()
    user = trace.get_tracer("user")

    def handle(record: Record) -> bytes:
        with user.start_as_current_span("user work"):
            return record.value or b""

    async def handle_async(record: Record) -> bytes:
        with user.start_as_current_span("user work"):
            return record.value or b""

    pc = consumer(
        broker,
        handle if kind == "thread" else handle_async,
        topic,
        group,
        output_topic=out,
        tracing=True,
        commit_interval=0.2,
    )
    stats = pc.run(until_idle=1.5)
    assert stats.processed == COUNT
    finished = spans.get_finished_spans()
    attempts = named(finished, "process ")
    _check_attempts(attempts, topic, group)
    users = named(finished, "user work")
    assert sorted(s.parent.span_id for s in users if s.parent) == sorted(
        s.context.span_id for s in attempts
    )
    for span in attempts:
        assert [e.name for e in span.events] == ["received"]
        assert (span.attributes or {})["parafka.queue_wait"] >= 0
    _check_followers(finished, attempts)
    outputs = broker.consume_all(out, expected=COUNT)
    assert sorted(_context(m) or "" for m in outputs) == sorted(_traceparent(s) for s in attempts)


def test_the_process_executors_worker_spans_are_children_of_the_attempt(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = exporter()
    file = tmp_path / "spans.jsonl"
    monkeypatch.setenv("PARAFKA_TEST_SPANS", str(file))
    monkeypatch.syspath_prepend(str(ROOT))
    topic = _source(broker, "trace-proc")
    out = broker.new_topic("trace-out-proc", 1)
    group = _group()
    pc = consumer(
        broker,
        "tests.handlers.traced:handle",
        topic,
        group,
        output_topic=out,
        executor="process",
        workers=1,
        tracing=True,
        commit_interval=0.2,
    )
    stats = pc.run(until_idle=1.5)
    assert stats.processed == COUNT
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    attempts = [s for s in lines if s["name"] == f"process {topic}"]
    users = {s["parent"]: s for s in lines if s["name"] == "user work"}
    assert len(attempts) == COUNT
    for attempt in attempts:
        assert attempt["kind"] == "CONSUMER" and attempt["trace_id"] == f"{TRACE_ID:032x}"
        assert attempt["parent"] == f"{PARENT_ID:016x}"
        assert attempt["attributes"]["messaging.consumer.group.name"] == group
        assert attempt["attributes"]["parafka.queue_wait"] >= 0
        assert users[attempt["span_id"]]["trace_id"] == attempt["trace_id"]
    outputs = broker.consume_all(out, expected=COUNT)
    payloads = [json.loads(m.value()) for m in outputs]
    ids = {a["span_id"] for a in attempts}
    assert {p["parent"] for p in payloads} == ids  # what the handler saw, in its worker
    assert {_context(m).split("-")[2] for m in outputs} == ids  # type: ignore[union-attr]
    # The parent process made the "ack" and "commit" children from the workers' marks.
    finished = spans.get_finished_spans()
    for name in ("ack", "commit"):
        children = named(finished, name + " ")
        assert {f"{s.parent.span_id:016x}" for s in children if s.parent} == ids, name


def test_a_dead_letter_carries_the_failed_attempts_context(broker: Broker) -> None:
    spans = exporter()
    topic = _source(broker, "trace-dl")
    dlq = broker.new_topic("trace-dl-dlq", 1)

    def handle(record: Record) -> None:
        if record.key == b"k3":
            raise ValueError("bad k3")

    pc = consumer(
        broker,
        handle,
        topic,
        _group(),
        tracing=True,
        dead_letter_topic=dlq,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.1, jitter=0),
    )
    stats = pc.run(until_idle=1.5)
    assert stats.dead_lettered == 1
    failed = [
        s
        for s in named(spans.get_finished_spans(), "process ")
        if s.status.status_code is StatusCode.ERROR
    ]
    assert sorted((s.attributes or {})["parafka.attempt"] for s in failed) == [1, 2]
    [letter] = broker.consume_all(dlq, expected=1)
    last = next(s for s in failed if (s.attributes or {})["parafka.attempt"] == 2)
    assert _context(letter) == _traceparent(last)


def test_tracing_off_makes_no_span(broker: Broker) -> None:
    spans = exporter()
    topic = _source(broker, "trace-off")
    seen: list[int] = []
    pc = consumer(broker, lambda r: seen.append(r.offset), topic, _group())
    pc.run(until_idle=1.0)
    assert len(seen) == COUNT
    assert not spans.get_finished_spans()


OFF = """
import sys
from parafka.testing import LocalBroker
from parafka import ParallelConsumer
pc = ParallelConsumer(lambda r: None, bootstrap_servers=sys.argv[1], group_id=sys.argv[2],
                      topics=[sys.argv[3]], kafka_config={"session.timeout.ms": 6000,
                      "heartbeat.interval.ms": 500})
stats = pc.run(until_idle=1.0)
assert stats.processed == int(sys.argv[4]), stats
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""


def test_tracing_off_never_imports_opentelemetry(broker: Broker) -> None:
    topic = _source(broker, "trace-noimport")
    done = subprocess.run(
        [sys.executable, "-c", OFF, broker.bootstrap_servers, _group(), topic, str(COUNT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_cli_flag_and_variable_turn_tracing_on() -> None:
    """`parafka run --trace` (or PARAFKA_TRACE=1) sets tracing; the consistency test pins
    that it reaches ParallelConsumer(tracing=)."""
    from click.testing import CliRunner

    from parafka.cli import cli

    args = ["run", "x:y", "-b", "h:1", "-g", "g", "-t", "t", "--print-config"]
    runner = CliRunner()
    assert "trace = false" in runner.invoke(cli, args).output
    assert "trace = true" in runner.invoke(cli, [*args, "--trace"]).output
    assert "trace = true" in runner.invoke(cli, args, env={"PARAFKA_TRACE": "1"}).output
