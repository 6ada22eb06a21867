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

from parafka.executors.base import ChunkResult, Completions
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
    reported to `completions` as one chunk, done (or failed, to be retried: a duplicate
    downstream, never a loss). No per-message delivery callback runs in Python, and the
    control thread never waits for the broker. While one epoch flushes, the next one fills,
    so epochs grow with the load.
    """

    FLUSH_STEP = 0.5  # seconds per flush call, so that a stop is noticed

    def __init__(
        self, bootstrap_servers: str, kafka_config: Mapping[str, Any], completions: Completions
    ) -> None:
        self._config = {
            **producer_config(bootstrap_servers, kafka_config),
            "delivery.report.only.error": True,
            "on_delivery": self._failed,
        }
        self._completions = completions
        self._inbox: deque[tuple[list[Record], list[Produced]]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._pending = 0
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Records handed over whose outputs are not reported yet."""
        return self._pending

    def send(self, records: list[Record], outputs: list[Produced]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="parafka-outputs", daemon=True)
            self._thread.start()
        with self._lock:
            self._pending += len(records)
        self._inbox.append((records, outputs))
        self._wake.set()

    def _failed(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._errors.append(KafkaException(err))

    def _run(self) -> None:
        producer = Producer(self._config, logger=client_logger())
        inbox = self._inbox
        while not self._stop.is_set():
            if not inbox:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            epoch = [inbox.popleft() for _ in range(len(inbox))]
            # A refusal by the client (e.g. an output over message.max.bytes) belongs to its
            # own records; a failed delivery is not attributed and fails the whole epoch.
            refused = [self._produce(producer, outputs) for _, outputs in epoch]
            while producer.flush(self.FLUSH_STEP) and not self._stop.is_set():
                pass
            if self._stop.is_set():
                return  # stopping without waiting: these records are not reported
            error = self._errors[0] if self._errors else None
            self._errors.clear()
            records = [record for members, _ in epoch for record in members]
            outcomes = None
            if error is not None or any(refused):
                outcomes = []
                for (members, _), own in zip(epoch, refused, strict=True):
                    failure = own or error
                    outcomes.extend([None if failure is None else (None, failure)] * len(members))
            self._completions.put(ChunkResult(records, outcomes))  # type: ignore[arg-type]
            with self._lock:
                self._pending -= len(records)

    @staticmethod
    def _produce(producer: Any, outputs: list[Produced]) -> BaseException | None:
        for out in outputs:
            while True:
                try:
                    producer.produce(out.topic, out.value, out.key, headers=out.headers)
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
