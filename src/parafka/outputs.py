"""Producing what the control loop sends: a record is done only when all its outputs are
acknowledged.

`OutputThread` carries handler outputs (many, acknowledged in epochs, off the control
thread). `OutputProducer` carries dead letters (few; each with a delivery callback, served
by `poll()`/`flush()` on the control thread, so no lock is needed).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from parafka.executors.base import ChunkResult, Completions, Outcome
from parafka.kafka_config import producer_config
from parafka.logs import client_logger
from parafka.record import Produced, Record

Settled = Callable[[Record, BaseException | None], None]


class _Ack:
    """Counts the delivery reports of the outputs of some records (one record, or the
    records of a batch, whose outputs belong to all of them); reports each record once,
    at the last report."""

    __slots__ = ("error", "on_settled", "records", "remaining")

    def __init__(self, records: list[Record], count: int, on_settled: Settled) -> None:
        self.records, self.remaining, self.on_settled = records, count, on_settled
        self.error: BaseException | None = None

    def delivered(self, err: KafkaError | None, _msg: Any) -> None:
        self.settle(1, None if err is None else KafkaException(err))

    def settle(self, count: int, error: BaseException | None) -> None:
        """`count` outputs are settled (delivered, failed, or never sent)."""
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= count
        if self.remaining == 0:
            for record in self.records:
                self.on_settled(record, self.error)


class OutputProducer:
    """Produces outputs and calls `on_settled(record, error)` once all of a record's
    outputs are acknowledged (error None) or one of them failed."""

    def __init__(
        self, bootstrap_servers: str, kafka_config: Mapping[str, Any], on_settled: Settled
    ) -> None:
        self._config = producer_config(bootstrap_servers, kafka_config)
        self._on_settled = on_settled
        self._producer: Any = None  # created at the first output
        self.pending = 0  # records whose outputs are not all settled

    def send(self, records: list[Record], outputs: list[Produced]) -> None:
        """Produce `outputs` for `records`; each record settles through `on_settled` when
        all of them are acknowledged."""
        if self._producer is None:
            self._producer = Producer(self._config, logger=client_logger())
        producer = self._producer
        self.pending += len(records)
        settled = self._on_settled

        def counted(record: Record, error: BaseException | None) -> None:
            self.pending -= 1
            settled(record, error)

        ack = _Ack(records, len(outputs), counted)
        for sent, out in enumerate(outputs):
            while True:
                try:
                    producer.produce(
                        out.topic,
                        out.value,
                        out.key,
                        headers=out.headers,
                        on_delivery=ack.delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except (KafkaException, TypeError, ValueError) as exc:
                    ack.settle(len(outputs) - sent, exc)  # these get no delivery report
                    return

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (calls `on_settled` for records now settled)."""
        if self._producer is not None:
            self._producer.poll(timeout)

    def flush(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


class OutputThread:
    """Produces handler outputs on its own thread and acknowledges them in epochs.

    The control thread hands over (records, outputs) with `send()`, a list append. The
    thread produces everything handed over so far, then flushes: when the flush returns,
    every output of that epoch is acknowledged (or one failed), and the epoch's records are
    reported to `completions` as one chunk: done, except the records whose outputs failed
    (retried: a duplicate downstream, never a loss). Delivery reports come only for
    failures (`delivery.report.only.error`), so no Python callback runs per message on
    success, and the control thread never waits for the broker. While one epoch flushes,
    the next one fills, so epochs grow with the load.

    No callback is attached per message (it costs the client a reference per message):
    the producer's one delivery callback notes failed messages, and after the flush they
    are matched to the items whose outputs they were (by topic, key and value; an item
    with an equal output fails too: retried, never lost).
    """

    FLUSH_STEP = 0.5  # seconds per flush call, so that a stop is noticed

    def __init__(
        self, bootstrap_servers: str, kafka_config: Mapping[str, Any], completions: Completions
    ) -> None:
        self._config = {
            **producer_config(bootstrap_servers, kafka_config),
            "delivery.report.only.error": True,
            "on_delivery": self._on_failure,
        }
        self._failures: list[tuple[tuple[str, bytes | None, bytes | None], KafkaError]] = []
        self._completions = completions
        self._inbox: deque[tuple[list[Record], list[Produced]]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Records handed over whose outputs are not reported yet."""
        return self._pending

    def send(self, items: list[tuple[list[Record], list[Produced]]]) -> None:
        """Hand over (records, their outputs) pairs: one wake-up for all of them."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="parafka-outputs", daemon=True)
            self._thread.start()
        with self._lock:
            self._pending += sum(len(records) for records, _ in items)
        self._inbox.extend(items)
        self._wake.set()

    def _run(self) -> None:
        producer = Producer(self._config, logger=client_logger())
        inbox = self._inbox
        while not self._stop.is_set():
            if not inbox:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            epoch = [inbox.popleft() for _ in range(len(inbox))]
            records: list[Record] = []
            spans: list[tuple[int, int]] = []  # each item's records within `records`
            errors: dict[int, BaseException] = {}  # item -> its first failure
            for index, (members, outputs) in enumerate(epoch):
                spans.append((len(records), len(records) + len(members)))
                records.extend(members)
                refused = self._produce(producer, outputs)
                if refused is not None:
                    errors.setdefault(index, refused)
            while producer.flush(self.FLUSH_STEP) and not self._stop.is_set():
                pass
            if self._stop.is_set():
                return  # stopping without waiting: these records are not reported
            if self._failures:
                self._match_failures(epoch, errors)
            outcomes: list[Outcome | None] | None = None
            if errors:
                outcomes = [None] * len(records)
                for index, error in errors.items():
                    start, end = spans[index]
                    outcomes[start:end] = [(None, error)] * (end - start)
            self._completions.put(ChunkResult(records, outcomes))
            with self._lock:
                self._pending -= len(records)

    def _on_failure(self, err: KafkaError | None, message: Any) -> None:
        """The producer's delivery callback: called for failed messages only."""
        if err is not None:
            self._failures.append(((message.topic(), message.key(), message.value()), err))

    def _match_failures(
        self,
        epoch: list[tuple[list[Record], list[Produced]]],
        errors: dict[int, BaseException],
    ) -> None:
        """Fail the items of the epoch whose outputs could not be delivered."""
        failed = dict(self._failures)
        self._failures.clear()
        for index, (_members, outputs) in enumerate(epoch):
            for out in outputs:
                err = failed.get((out.topic, out.key, out.value))
                if err is not None:
                    errors.setdefault(index, KafkaException(err))
                    break

    @staticmethod
    def _produce(producer: Any, outputs: list[Produced]) -> BaseException | None:
        """Hand the outputs to the producer; the client's refusal, if any."""
        produce = producer.produce
        for topic, value, key, headers in outputs:
            while True:
                try:
                    # Without headers=None: passing it costs as much as the call itself.
                    if headers is None:
                        produce(topic, value, key)
                    else:
                        produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except (KafkaException, TypeError, ValueError) as exc:
                    return exc
        return None

    def close(self, timeout: float) -> None:
        """Stop the thread; what is still unacknowledged is not reported."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
