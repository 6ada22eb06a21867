"""Tracing's two halves without a broker: the attempt span around a handler (parent from
the headers, attributes, outputs and failures carrying the context) and the control
thread's "ack" and "commit" spans; settings and the missing-package error."""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from parafka import ConfigError, Output, Record
from parafka.core.deadletter import Failure, dead_letter
from parafka.core.record import normalize_outputs
from parafka.core.seam import CommitResult, Offset
from parafka.engine.settings import Settings
from parafka.executors.base import TraceConfig, Work
from parafka.observe.tracing import ERROR_CONTEXT, Attempts, Follow, Mark, Received
from tests.otel import PARENT_ID, TRACE_ID, TRACEPARENT, exporter, header, named

CONFIG = TraceConfig("g1")


def record(offset: int = 7, headers: Any = None, key: bytes | None = b"k1") -> Record:
    return Record("orders", 2, offset, key, b"value", headers, attempt=3)


def traced_record(offset: int = 7) -> Record:
    return record(offset, [("traceparent", TRACEPARENT.encode()), ("x", b"1")])


def test_the_attempt_span_continues_the_records_trace_with_messaging_attributes() -> None:
    spans = exporter()
    seen: list[Any] = []

    def handle(r: Record) -> None:
        with trace.get_tracer("user").start_as_current_span("user work") as mine:
            seen.append(mine)

    sink: deque[Mark] = deque()
    Attempts(CONFIG, None, sink).wrap(handle)(traced_record())
    [attempt] = named(spans.get_finished_spans(), "process")
    [user] = named(spans.get_finished_spans(), "user work")
    assert attempt.name == "process orders" and attempt.kind is SpanKind.CONSUMER
    assert attempt.context.trace_id == TRACE_ID
    assert attempt.parent is not None and attempt.parent.span_id == PARENT_ID
    assert user.parent is not None and user.parent.span_id == attempt.context.span_id
    assert dict(attempt.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "k1",
        "messaging.consumer.group.name": "g1",
        "messaging.message.body.size": 5,
        "parafka.attempt": 3,
    }
    [mark] = sink
    assert (mark.topic, mark.partition, mark.offset, mark.outputs) == ("orders", 2, 7, False)
    assert (mark.trace_id, mark.span_id) == (TRACE_ID, attempt.context.span_id)
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached after the call


def test_a_record_without_context_starts_a_trace_and_a_binary_key_is_left_out() -> None:
    spans = exporter()
    Attempts(CONFIG, None, None).wrap(lambda r: None)(record(key=b"\xff\xfe"))
    [attempt] = spans.get_finished_spans()
    assert attempt.parent is None and attempt.context.trace_id != TRACE_ID
    assert "messaging.kafka.message.key" not in (attempt.attributes or {})


def test_queue_wait_is_an_attribute_and_a_received_event() -> None:
    spans = exporter()
    one = Received("orders", 0, 1, None, None)
    import time

    one.received = time.monotonic() - 0.25
    Attempts(CONFIG, None, None).wrap(lambda r: None)(one)
    [attempt] = spans.get_finished_spans()
    wait = (attempt.attributes or {})["parafka.queue_wait"]
    assert isinstance(wait, float) and 0.25 <= wait < 5
    [event] = attempt.events
    assert event.name == "received"
    assert attempt.start_time is not None and event.timestamp < attempt.start_time - 0.2e9
    assert (attempt.attributes or {})["messaging.kafka.message.tombstone"] is True


def test_outputs_carry_the_attempt_context_unless_the_handler_set_one() -> None:
    spans = exporter()
    handler = Attempts(CONFIG, "out", None).wrap(
        lambda r: [b"a", Output(b"b", headers={"traceparent": "mine"}), {"c": 1}]
    )
    outputs = normalize_outputs(handler(traced_record()), "out")
    [attempt] = spans.get_finished_spans()
    ours = f"00-{TRACE_ID:032x}-{attempt.context.span_id:016x}-01"
    assert [header(headers, "traceparent") for _, _, _, headers in outputs] == [ours, "mine", ours]
    assert [value for _, value, _, _ in outputs] == [b"a", b"b", b'{"c":1}']


def test_a_failure_is_recorded_and_its_context_goes_to_the_dead_letter() -> None:
    spans = exporter()

    def handle(r: Record) -> None:
        raise ValueError("bad 7")

    with pytest.raises(ValueError) as caught:
        Attempts(CONFIG, None, deque()).wrap(handle)(traced_record())
    [attempt] = spans.get_finished_spans()
    assert attempt.status.status_code is StatusCode.ERROR
    assert (attempt.attributes or {})["error.type"] == "ValueError"
    assert [e.name for e in attempt.events] == ["exception"]
    carrier = getattr(caught.value, ERROR_CONTEXT)
    letter = dead_letter(traced_record(), "dlq", "g1", Failure(caught.value, 3, 0.0, 0.0))
    forwarded = Follow.letter(letter, caught.value)[3]
    ours = f"00-{TRACE_ID:032x}-{attempt.context.span_id:016x}-01"
    assert carrier["traceparent"] == ours
    assert header(forwarded, "traceparent") == ours
    assert [h[0] for h in forwarded or ()].count("traceparent") == 1
    assert header(forwarded, "x") == "1"  # the record's other headers stay
    untraced = Follow.letter(letter, RuntimeError("worker died"))
    assert header(untraced[3], "traceparent") == TRACEPARENT  # the producer's, copied


def test_an_async_handler_runs_inside_its_attempt_span() -> None:
    spans = exporter()

    async def handle(r: Record) -> bytes:
        await asyncio.sleep(0)
        with trace.get_tracer("user").start_as_current_span("user work"):
            return b"done"

    wrapped = Attempts(CONFIG, "out", None).wrap_async(handle)

    async def both() -> list[Any]:
        return list(await asyncio.gather(wrapped(traced_record(1)), wrapped(traced_record(2))))

    results = asyncio.run(both())
    attempts = named(spans.get_finished_spans(), "process")
    users = named(spans.get_finished_spans(), "user work")
    assert {u.parent.span_id for u in users if u.parent} == {a.context.span_id for a in attempts}
    assert all(len(r) == 1 and header(r[0].headers, "traceparent") for r in results)


def test_a_batch_is_one_span_linked_to_each_records_context() -> None:
    spans = exporter()
    sink: deque[Mark] = deque()
    batch = [traced_record(1), record(2), traced_record(3)]
    Attempts(CONFIG, None, sink).wrap(lambda rs: None, batch=True)(batch)
    [span] = spans.get_finished_spans()
    assert span.name == "process orders"
    assert [link.context.span_id for link in span.links] == [PARENT_ID, PARENT_ID]
    assert (span.attributes or {})["messaging.batch.message_count"] == 3
    assert [m.offset for m in sink] == [1, 2, 3]


def test_an_unsampled_attempt_leaves_no_mark_but_still_forwards_its_context() -> None:
    exporter()
    unsampled = TRACEPARENT[:-2] + "00"
    sink: deque[Mark] = deque()
    out = Attempts(CONFIG, "out", sink).wrap(lambda r: b"x")(
        record(headers=[("traceparent", unsampled.encode())])
    )
    assert not sink
    # The default sampler follows the parent's decision: nothing recorded, and the
    # context still goes on (the same trace, not sampled) for downstream to agree.
    sent = header(out[0].headers, "traceparent") or ""
    assert sent.startswith(f"00-{TRACE_ID:032x}-") and sent.endswith("-00")


def test_ack_and_commit_spans_are_children_of_the_attempt() -> None:
    spans = exporter()
    marks: deque[Mark] = deque()
    follow = Follow("g1", marks)
    now = 1_700_000_000_000_000_000
    marks.append(Mark("orders", 0, 5, TRACE_ID, 0x1111, 1, now, True))
    marks.append(Mark("orders", 0, 6, TRACE_ID, 0x2222, 1, now, False, acked=now + 5))
    marks.append(Mark("orders", 1, 9, TRACE_ID, 0x3333, 1, now, False))
    follow.collect()
    follow.acknowledged([Record("orders", 0, 5), Record("orders", 0, 6)])
    follow.committing([Offset("orders", 0, 7)])
    follow.committed([CommitResult(Offset("orders", 0, 7), None)])
    follow.committed([CommitResult(Offset("orders", 1, 10), RuntimeError("no"))])
    acks = named(spans.get_finished_spans(), "ack")
    commits = named(spans.get_finished_spans(), "commit")
    # offset 6's ack was timed in its worker process; offset 5's now
    assert sorted(s.parent.span_id for s in acks if s.parent) == [0x1111, 0x2222]
    assert sorted(s.parent.span_id for s in commits if s.parent) == [0x1111, 0x2222]
    assert all(s.context.trace_id == TRACE_ID for s in acks + commits)
    assert {(s.attributes or {})["parafka.committed_offset"] for s in commits} == {7}
    assert follow.pending == {("orders", 1): follow.pending[("orders", 1)]}  # failed commit
    follow.covered(("orders", 1), 10)  # exactly-once: the transaction committed it
    assert len(named(spans.get_finished_spans(), "commit")) == 3
    marks.append(Mark("orders", 1, 4, TRACE_ID, 0x4444, 1, now, False))  # too late
    follow.collect()
    assert not follow.pending
    follow.forget([("orders", 1)])
    assert not follow.pending and not follow.committed_to.get(("orders", 1))


def test_work_traced_is_the_handler_itself_when_tracing_is_off() -> None:
    def handle(r: Record) -> None:
        return None

    assert Work(handle).traced(handle, None) is handle
    assert Work(handle, trace=CONFIG).traced(handle, None) is not handle


def test_tracing_without_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.propagate", None)
    with pytest.raises(ConfigError) as caught:
        Settings("localhost:9092", "g", ("t",), tracing=True)
    message = str(caught.value)
    assert "pip install 'parafka[otel]'" in message and "\n" not in message
    Settings("localhost:9092", "g", ("t",))  # off: not looked for


def test_tracing_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="use True or False"):
        Settings("localhost:9092", "g", ("t",), tracing="yes")  # type: ignore[arg-type]


def test_without_a_tracer_provider_the_records_context_passes_through() -> None:
    """The API alone (no SDK provider in this process, e.g. a worker process nobody set
    up): no span, but the handler sees the record's context and outputs carry it on."""
    seen = []

    class NoProvider(Attempts):
        def __init__(self) -> None:
            super().__init__(CONFIG, "out", None)
            self.tracer = trace.NoOpTracer()

    def handle(r: Record) -> bytes:
        seen.append(trace.get_current_span().get_span_context().span_id)
        return b"x"

    out = NoProvider().wrap(handle)(traced_record())
    assert seen == [PARENT_ID]
    assert header(out[0].headers, "traceparent") == TRACEPARENT


@pytest.fixture
def drop_roots() -> Any:
    """The test process's provider with a sampler that drops every root span (as an
    application that samples only what its callers sampled would set it)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    spans = exporter()
    provider: Any = trace.get_tracer_provider()
    before = provider.sampler
    provider.sampler = ParentBased(ALWAYS_OFF)
    try:
        yield spans
    finally:
        provider.sampler = before


def test_no_span_is_made_for_a_record_without_context_when_roots_are_dropped(
    drop_roots: Any,
) -> None:
    attempts = Attempts(CONFIG, None, deque())
    assert attempts.roots_dropped
    current: list[Any] = []

    def work(r: Record) -> Output:
        current.append(trace.get_current_span())
        return Output(b"x", topic="out")

    handle = attempts.wrap(work)
    [output] = normalize_outputs(handle(record()), "out")
    assert current == [trace.INVALID_SPAN] and header(output[3], "traceparent") is None
    assert attempts.sink == deque() and drop_roots.get_finished_spans() == ()
    handle(traced_record())  # a sampled caller: its trace goes on
    [attempt] = drop_roots.get_finished_spans()
    assert attempt.context.trace_id == TRACE_ID and attempt.parent.span_id == PARENT_ID


def test_spans_are_made_when_the_sampler_may_keep_a_root() -> None:
    exporter()
    assert not Attempts(CONFIG, None, None).roots_dropped
