"""OpenTelemetry tracing (the `otel` extra; `tracing=True`, `parafka run --trace`).

Imported only when tracing is on, so a consumer without it never imports OpenTelemetry.
Two halves:

- `Attempts` runs where handlers run (a worker thread, the asyncio loop, a worker
  process). It wraps the handler once, at the executor's start, so the untraced path has
  no per-record test: each call reads the record's context from its headers (W3C
  `traceparent`/`tracestate` through the API's global propagator), starts a CONSUMER span
  "process <topic>" with the messaging attributes, makes it current while the handler
  runs (its own spans become children), writes the span's context into the headers of
  every output, and marks a failure with it for the dead letter. A sampled attempt leaves
  a `Mark` (plain numbers, so it can cross a pipe) for the control thread.
- `Follow` runs on the control thread: from the marks it adds the child spans that only
  that thread can time, "ack" (outputs acknowledged by the broker) and "commit" (the
  offset commit that covers the record), and forwards the context into dead letters.

Only the OpenTelemetry API is used: the application installs the SDK, a tracer provider
and its exporter (docs/tracing.md).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from parafka.core.record import Output, Produced, Record, normalize_outputs
from parafka.core.seam import TP, CommitResult, Offset
from parafka.executors.base import TraceConfig

INSTRUMENTATION = "parafka"
# Messaging semantic conventions (v1.27-1.3x names; later drafts rename some, see
# docs/tracing.md). Attribute names in one place.
SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
KEY = "messaging.kafka.message.key"
TOMBSTONE = "messaging.kafka.message.tombstone"
GROUP = "messaging.consumer.group.name"
BODY_SIZE = "messaging.message.body.size"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
ATTEMPT = "parafka.attempt"
QUEUE_WAIT = "parafka.queue_wait"  # seconds from fetch to the start of this attempt
# Set on a handler's exception: the attempt's context, for the dead letter's headers.
ERROR_CONTEXT = "parafka_trace_context"


class Mark(NamedTuple):
    """A sampled attempt as the control thread needs it (plain values: it crosses the
    process executor's pipe). Times are nanoseconds since the epoch; `acked` is set by
    a worker process that produced the outputs itself (0: not acknowledged there)."""

    topic: str
    partition: int
    offset: int
    trace_id: int
    span_id: int
    flags: int
    ended: int
    outputs: bool
    acked: int = 0


class _HeaderGetter(Getter[Sequence[tuple[str, Any]]]):
    """Reads a propagation field from Kafka headers ((name, bytes) pairs)."""

    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        found = [_text(value) for name, value in carrier if name == key and value is not None]
        return found or None

    def keys(self, carrier: Sequence[tuple[str, Any]]) -> list[str]:
        return [name for name, _ in carrier]


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


HEADERS = _HeaderGetter()


class Received(Record):
    """A worker process's record with the parent's receive time (monotonic clock, the
    same in every process of the machine), for the queue wait."""

    __slots__ = ("received",)
    received: float


def roots_dropped() -> bool:
    """Whether the tracer provider's sampler drops every span that has no parent: the SDK's
    ALWAYS_OFF, or ParentBased with it for roots (known by their descriptions; the API
    has no way to ask a sampler what it would decide without asking it to decide)."""
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if not callable(describe):
        return False
    text = describe()
    return isinstance(text, str) and (
        text == "AlwaysOffSampler" or text.startswith("ParentBased{root:AlwaysOffSampler,")
    )


def _tracer() -> trace.Tracer:
    from parafka import __version__

    return trace.get_tracer(INSTRUMENTATION, __version__)


class Attempts:
    """A span per handler attempt, around the user's handler (see the module docstring).

    `sink` collects a `Mark` per sampled attempt for the control thread (None: not
    collected, e.g. the share-group loop)."""

    def __init__(
        self, config: TraceConfig, default_topic: str | None, sink: deque[Mark] | None
    ) -> None:
        self.tracer = _tracer()
        self.group = config.group_id
        self.default_topic = default_topic
        self.sink = sink
        self.names: dict[str, str] = {}
        self.propagator = propagate.get_global_textmap()
        self.fields = frozenset(self.propagator.fields)
        self.roots_dropped = roots_dropped()

    def wrap(self, handler: Callable[[Any], Any], batch: bool = False) -> Callable[[Any], Any]:
        """`handler` (a batch handler with `batch`), run inside an attempt span."""
        start = self._start_batch if batch else self._start
        finish, fail = self._finish, self._fail
        attach, detach = otel_context.attach, otel_context.detach
        # A batch always gets its span (its records' contexts are linked to it).
        roots_dropped, fields = self.roots_dropped and not batch, self.fields

        def traced(record: Any) -> Any:
            if roots_dropped:  # `_untraced`, written out: this runs for every record
                headers = record.headers
                if not headers or not any(name in fields for name, _ in headers):
                    return handler(record)
            span, ctx, recording = start(record)
            token = attach(ctx)
            try:
                result = handler(record)
            except BaseException as exc:
                fail(span, ctx, record, exc)
                raise
            finally:
                detach(token)
            if result is None and not recording:  # the cheap case: nothing to forward
                span.end()
                return None
            return finish(span, ctx, record, result)

        return traced

    def wrap_async(
        self, handler: Callable[[Any], Awaitable[Any]], batch: bool = False
    ) -> Callable[[Any], Awaitable[Any]]:
        """An `async def` handler, awaited inside an attempt span (current in its task)."""
        start, finish, fail = self._start_batch if batch else self._start, self._finish, self._fail
        attach, detach = otel_context.attach, otel_context.detach
        untraced = (lambda _: False) if batch else self._untraced

        async def traced(record: Any) -> Any:
            if untraced(record):  # a span the sampler would drop, with no trace to carry
                return await handler(record)
            span, ctx, _ = start(record)
            token = attach(ctx)
            try:
                result = await handler(record)
            except BaseException as exc:
                fail(span, ctx, record, exc)
                raise
            finally:
                detach(token)
            return finish(span, ctx, record, result)

        return traced

    # -- spans ----------------------------------------------------------------------
    def _untraced(self, record: Record) -> bool:
        """True for a record that came with no trace context when the sampler drops every
        span without a parent: its attempt span would be dropped, and so would its
        handler's spans as roots; its outputs have no trace to carry on. No span is made
        (the SDK's start and end of a dropped span cost 4-6 µs, a no-op handler's whole
        record about 3)."""
        if not self.roots_dropped:
            return False
        headers = record.headers
        return not headers or not any(name in self.fields for name, _ in headers)

    def parent(self, record: Record) -> Context | None:
        """The context the record's producer sent in its headers (None: none sent)."""
        headers = record.headers
        if not headers or not any(name in self.fields for name, _ in headers):
            return None  # the common untraced record: no propagator call
        return self.propagator.extract(headers, getter=HEADERS)

    def _name(self, topic: str) -> str:
        name = self.names.get(topic)
        if name is None:
            name = self.names[topic] = f"process {topic}"
        return name

    def _start(self, record: Record) -> tuple[Span, Context, bool]:
        """The attempt's span, the context to make current, whether it is recording."""
        parent = self.parent(record)
        topic = record.topic
        name = self.names.get(topic) or self._name(topic)
        span = self.tracer.start_span(name, parent, SpanKind.CONSUMER)
        recording = span.is_recording()
        if recording:
            span.set_attributes(self.attributes(record))
            received = getattr(record, "received", 0.0)
            if received:
                wait = max(0.0, time.monotonic() - received)
                span.set_attribute(QUEUE_WAIT, wait)
                span.add_event("received", timestamp=time.time_ns() - int(wait * 1e9))
        elif span is trace.INVALID_SPAN and parent is not None:
            # No tracer provider (the API's no-op): the record's own context stays current
            # and goes on in outputs, so the trace passes through unbroken.
            return span, parent, False
        return span, trace.set_span_in_context(span, parent), recording

    def _start_batch(self, records: Sequence[Record]) -> tuple[Span, Context, bool]:
        """One span for a batch handler's call, linked to each record's own context."""
        links = []
        for record in records:
            parent = self.parent(record)
            if parent is not None:
                context = trace.get_current_span(parent).get_span_context()
                if context.is_valid:
                    links.append(Link(context))
        topics = {record.topic for record in records}
        name = self._name(next(iter(topics))) if len(topics) == 1 else "process"
        span = self.tracer.start_span(name, None, SpanKind.CONSUMER, links=links)
        recording = span.is_recording()
        if recording:
            attributes: dict[str, Any] = {
                SYSTEM: "kafka",
                OPERATION_TYPE: "process",
                OPERATION_NAME: "process",
                GROUP: self.group,
                BATCH_COUNT: len(records),
            }
            if len(topics) == 1:
                attributes[DESTINATION] = records[0].topic
            if records:
                attributes[ATTEMPT] = max(record.attempt for record in records)
            span.set_attributes(attributes)
        return span, trace.set_span_in_context(span), recording

    def attributes(self, record: Record) -> dict[str, Any]:
        """The messaging attributes of one record's attempt."""
        attributes: dict[str, Any] = {
            SYSTEM: "kafka",
            OPERATION_TYPE: "process",
            OPERATION_NAME: "process",
            DESTINATION: record.topic,
            PARTITION: str(record.partition),
            OFFSET: record.offset,
            GROUP: self.group,
            ATTEMPT: record.attempt,
        }
        key = record.key
        if key is not None:
            # No canonical text form: left out, as the conventions say.
            with contextlib.suppress(UnicodeDecodeError):
                attributes[KEY] = key.decode("utf-8")
        value = record.value
        if value is None:
            attributes[TOMBSTONE] = True
        else:
            attributes[BODY_SIZE] = len(value)
        return attributes

    def _finish(self, span: Span, ctx: Context, record: Any, result: Any) -> Any:
        """End a successful attempt: the outputs carry its context; a sampled one is marked."""
        if result is not None:
            try:
                result = self.forward(result, ctx)
            except BaseException as exc:  # what the handler returned cannot be produced
                self._fail(span, ctx, record, exc)
                raise
        recording = span.is_recording()
        span.end()
        if recording and self.sink is not None:
            self._mark(span, record, result is not None)
        return result

    def _fail(self, span: Span, ctx: Context, record: Any, exc: BaseException) -> None:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
            if self.sink is not None:
                self._mark(span, record, False)
        # The dead letter carries this attempt's context on (an exception that takes no
        # attributes leaves the letter with the record's own headers).
        with contextlib.suppress(AttributeError, TypeError):
            setattr(exc, ERROR_CONTEXT, self.carrier(ctx))
        span.end()

    def _mark(self, span: Span, record: Any, outputs: bool) -> None:
        context = span.get_span_context()
        ended = time.time_ns()
        append = self.sink.append  # type: ignore[union-attr]
        for one in record if isinstance(record, list) else (record,):
            append(
                Mark(
                    one.topic,
                    one.partition,
                    one.offset,
                    context.trace_id,
                    context.span_id,
                    int(context.trace_flags),
                    ended,
                    outputs,
                )
            )

    def carrier(self, ctx: Context) -> dict[str, str]:
        """The propagation headers of the attempt's context (its span as the parent)."""
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, ctx)
        return carrier

    def forward(self, result: Any, ctx: Context) -> list[Output]:
        """What the handler returned, as outputs whose headers carry the attempt's context
        (a header the handler set itself is kept)."""
        carrier = self.carrier(ctx)
        return [
            Output(value, key, with_context(headers, carrier), topic)
            for topic, value, key, headers in normalize_outputs(result, self.default_topic)
        ]


def with_context(
    headers: Iterable[tuple[str, bytes | str | None]] | None, carrier: Mapping[str, str]
) -> list[tuple[str, bytes | str | None]]:
    """`headers` plus the propagation fields of `carrier` that they do not set already."""
    kept = list(headers or ())
    present = {name for name, _ in kept}
    kept.extend((name, value) for name, value in carrier.items() if name not in present)
    return kept


class Follow:
    """The control thread's part: "ack" and "commit" child spans of sampled attempts,
    and the context carried into dead letters. `marks` is the executor's sink."""

    def __init__(self, group: str, marks: deque[Mark]) -> None:
        self.tracer = _tracer()
        self.group = group
        self.marks = marks
        self.pending: dict[TP, dict[int, Mark]] = {}  # sampled attempts not committed yet
        self.commit_sent: dict[TP, int] = {}  # when the last commit of a partition was asked
        self.committed_to: dict[TP, int] = {}  # the last offset committed per partition

    def collect(self) -> None:
        """Take in the marks the executor left; a worker process's acknowledgement is
        timed already, so its "ack" span is made now."""
        marks, committed_to = self.marks, self.committed_to
        while marks:
            mark = marks.popleft()
            tp = (mark.topic, mark.partition)
            if mark.offset < committed_to.get(tp, -1):
                # Committed before its mark came (a worker process's watchdog reported
                # the record early; its mark came with the chunk's last report): too late.
                continue
            self.pending.setdefault(tp, {})[mark.offset] = mark
            if mark.acked:
                self._child("ack", mark, mark.ended, mark.acked)

    def acknowledged(self, records: Iterable[Record]) -> None:
        """Outputs of these records were acknowledged by the broker (output thread)."""
        if not self.pending:
            return
        now = time.time_ns()
        for record in records:
            mark = self.pending.get((record.topic, record.partition), {}).get(record.offset)
            if mark is not None and mark.outputs:
                self._child("ack", mark, mark.ended, now)

    def committing(self, offsets: Iterable[Offset]) -> None:
        now = time.time_ns()
        for offset in offsets:
            self.commit_sent[(offset.topic, offset.partition)] = now

    def committed(self, results: Iterable[CommitResult]) -> None:
        """Commit outcomes: each sampled attempt below a committed offset gets its span."""
        for offset, error in results:
            if error is None and offset.offset is not None:
                self.covered((offset.topic, offset.partition), offset.offset)

    def covered(self, tp: TP, position: int) -> None:
        """The commit of `position` for `tp` succeeded (now)."""
        self.committed_to[tp] = max(position, self.committed_to.get(tp, -1))
        marks = self.pending.get(tp)
        if not marks:
            return
        now = time.time_ns()
        sent = self.commit_sent.get(tp, now)
        for offset in [o for o in marks if o < position]:
            mark = marks.pop(offset)
            self._child("commit", mark, max(sent, mark.ended), now, position)
        if not marks:
            del self.pending[tp]

    def forget(self, tps: Iterable[TP]) -> None:
        """Revoked or lost partitions: their records are the next owner's now."""
        for tp in tps:
            self.pending.pop(tp, None)
            self.commit_sent.pop(tp, None)
            self.committed_to.pop(tp, None)

    def _child(self, name: str, mark: Mark, start: int, end: int, position: int = -1) -> None:
        parent = SpanContext(
            mark.trace_id, mark.span_id, is_remote=False, trace_flags=TraceFlags(mark.flags)
        )
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        # The record's coordinates are on the parent: each attribute costs the SDK about
        # a microsecond to check, and these spans come one or two per sampled record.
        attributes: dict[str, Any] = {
            SYSTEM: "kafka",
            OPERATION_TYPE: "settle",
            OPERATION_NAME: name,
        }
        if position >= 0:
            attributes["parafka.committed_offset"] = position
        span = self.tracer.start_span(
            f"{name} {mark.topic}",
            context,
            SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start,
        )
        span.end(end_time=max(start, end))

    @staticmethod
    def letter(letter: Produced, error: BaseException) -> Produced:
        """A dead letter carrying the failed attempt's context (when the handler raised;
        otherwise the record's own headers, copied, carry its producer's)."""
        carrier = getattr(error, ERROR_CONTEXT, None)
        if not isinstance(carrier, dict) or not carrier:
            return letter
        topic, value, key, headers = letter
        kept = [h for h in headers or () if h[0] not in carrier]
        kept.extend(carrier.items())
        return topic, value, key, kept
