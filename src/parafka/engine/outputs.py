"""Producing what the control loop sends: a record is done only when all its outputs are
acknowledged.

`OutputThread` carries handler outputs (many, acknowledged in epochs, off the control
thread). `OutputProducer` carries dead letters (few; each with a delivery callback, served
by `poll()`/`flush()` on the control thread, so no lock is needed).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from parafka.core.entry import Entry
from parafka.core.outcomes import Paired
from parafka.core.record import Produced, Record
from parafka.core.seam import ClientError, Kafka, Message, Producer
from parafka.executors.affinity import unpinned
from parafka.executors.base import ChunkResult, Completions, Outcome
from parafka.kafka.config import producer_config

Settled = Callable[[Entry, BaseException | None], None]


class _Ack:
    """Counts the delivery reports of the outputs of some entries (one record, or the
    records of a batch, whose outputs belong to all of them); reports each entry once,
    at the last report."""

    __slots__ = ("entries", "error", "on_settled", "remaining")

    def __init__(self, entries: list[Entry], count: int, on_settled: Settled) -> None:
        self.entries, self.remaining, self.on_settled = entries, count, on_settled
        self.error: BaseException | None = None

    def delivered(self, err: ClientError | None, _msg: Message) -> None:
        self.settle(1, err)

    def settle(self, count: int, error: BaseException | None) -> None:
        """`count` outputs are settled (delivered, failed, or never sent)."""
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= count
        if self.remaining == 0:
            for entry in self.entries:
                self.on_settled(entry, self.error)


class OutputProducer:
    """Produces dead letters and calls `on_settled(entry, error)` once all of an entry's
    records are acknowledged (error None) or one of them failed."""

    def __init__(
        self,
        kafka: Kafka,
        bootstrap_servers: str,
        kafka_config: Mapping[str, Any],
        on_settled: Settled,
    ) -> None:
        self._kafka = kafka
        self._config = producer_config(bootstrap_servers, kafka_config)
        self._on_settled = on_settled
        self._producer: Producer | None = None  # created at the first output
        self.pending = 0  # entries whose outputs are not all settled

    def send(self, entries: list[Entry], outputs: list[Produced]) -> None:
        """Produce `outputs` for `entries`; each settles through `on_settled` when all
        of them are acknowledged."""
        if self._producer is None:
            with unpinned():  # made on the control thread: its client's threads run anywhere
                self._producer = self._kafka.producer(self._config)
        producer = self._producer
        self.pending += len(entries)
        settled = self._on_settled

        def counted(entry: Entry, error: BaseException | None) -> None:
            self.pending -= 1
            settled(entry, error)

        ack = _Ack(entries, len(outputs), counted)
        for sent, (topic, value, key, headers) in enumerate(outputs):
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=ack.delivered)
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except ClientError as exc:
                    ack.settle(len(outputs) - sent, exc)  # these get no delivery report
                    return

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (calls `on_settled` for entries now settled)."""
        if self._producer is not None:
            self._producer.poll(timeout)

    def flush(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


# (records, their outputs): the engine's entries, or the share loop's records; the
# outputs belong to all the records, or, in a Paired item, one to each
Item = tuple[Sequence[Record], list[Produced]] | Paired


Errors = dict[int | tuple[int, int], BaseException]


class Acknowledged(ChunkResult):
    """An epoch's acknowledgements (a ChunkResult of entries whose outputs were sent):
    outcomes None when all were delivered, else per entry None or (None, error)."""


class OutputThread:
    """Produces handler outputs on its own thread and acknowledges them in epochs.

    The control thread hands over (entries, outputs) with `send()`, a list append. The
    thread produces everything handed over so far, then flushes: when the flush returns,
    every output of that epoch is acknowledged (or one failed), and the epoch's entries
    are reported to `completions` as one chunk: done, except the entries whose outputs
    failed (retried: a duplicate downstream, never a loss). Deliveries are reported only
    when they fail, so no Python callback runs per message on success, and the control
    thread never waits for the broker. While one epoch flushes, the next one fills, so
    epochs grow with the load. Epochs are reported in the order they were handed over.

    After the flush, failed messages are matched to the items whose outputs they were
    (by topic, key and value; an item with an equal output fails too: retried, never lost).

    `pump()` does one step of that work; the thread calls it in a loop, the simulator
    calls it when its schedule says so.

    `ack_seconds` is how long outputs wait to be acknowledged, from the hand-over of an
    epoch's first item to the epoch's report (a moving average over epochs): the time a
    shard whose run had outputs waits before its next run may start.
    """

    FLUSH_STEP = 0.5  # seconds per flush call, so that a stop is noticed

    def __init__(
        self,
        kafka: Kafka,
        bootstrap_servers: str,
        kafka_config: Mapping[str, Any],
        completions: Completions,
        threaded: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kafka = kafka
        self._clock = clock
        self._config = producer_config(bootstrap_servers, kafka_config)
        self._failures: list[tuple[tuple[str, bytes | None, bytes | None], ClientError]] = []
        self._completions = completions
        self._inbox: deque[Item] = deque()
        self._epoch: list[Item] | None = None
        # item of the epoch (index; (index, position) in a Paired item) -> its first failure
        self._errors: Errors = {}
        self._producer: Producer | None = None
        self._threaded = threaded
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._waiting_since = 0.0  # when the inbox's oldest item was handed over
        self._epoch_since = 0.0  # the same for the epoch flushing now
        self.ack_seconds = 0.0

    @property
    def pending(self) -> int:
        """Entries handed over whose outputs are not reported yet."""
        return self._pending

    @property
    def native_id(self) -> int | None:
        """The output thread's id in the operating system, once it runs."""
        thread = self._thread
        return None if thread is None else thread.native_id

    def send(self, items: Sequence[Item]) -> None:
        """Hand over (entries, their outputs) pairs: one wake-up for all of them."""
        if self._thread is None and self._threaded:
            self._thread = threading.Thread(target=self._run, name="parafka-outputs", daemon=True)
            self._thread.start()
        with self._lock:
            self._pending += sum(len(entries) for entries, _ in items)
        if not self._inbox:
            self._waiting_since = self._clock()
        self._inbox.extend(items)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._epoch is None and not self._inbox:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            self.pump(self.FLUSH_STEP)

    def pump(self, timeout: float = 0.0) -> bool:
        """Start an epoch with what was handed over (if none is flushing), flush for up
        to `timeout`, and report the epoch once it is all acknowledged. True when an
        epoch was reported."""
        if self._producer is None:
            self._producer = self._kafka.producer(self._config, on_failed=self._on_failure)
        producer = self._producer
        if self._epoch is None:
            if not self._inbox:
                return False
            inbox, self._epoch_since = self._inbox, self._waiting_since
            self._epoch = [inbox.popleft() for _ in range(len(inbox))]
            errors: Errors = {}
            for index, item in enumerate(self._epoch):
                if type(item) is Paired:
                    for at, refused in producer.produce_many(item.outputs):
                        errors.setdefault((index, at), refused)
                elif (error := self._produce(producer, item[1])) is not None:
                    errors.setdefault(index, error)
            self._errors = errors
        if producer.flush(timeout) or self._stop.is_set():
            return False  # stopping without waiting: these entries are not reported
        epoch, errors = self._epoch, self._errors
        self._epoch = None
        if self._failures:
            self._match_failures(epoch, errors)
        entries: list[Record] = []
        outcomes: list[Outcome | None] | None = [] if errors else None
        for index, item in enumerate(epoch):
            members = item[0]
            entries.extend(members)
            if outcomes is None:
                continue
            if type(item) is Paired:  # each record has its own output
                found = (errors.get((index, at)) for at in range(len(members)))
                outcomes.extend(None if error is None else (None, error) for error in found)
            else:
                error = errors.get(index)
                outcomes.extend([None if error is None else (None, error)] * len(members))
        self._completions.put(Acknowledged(entries, outcomes))
        with self._lock:
            self._pending -= len(entries)
        self.ack_seconds += 0.2 * (self._clock() - self._epoch_since - self.ack_seconds)
        return True

    @property
    def idle(self) -> bool:
        """Nothing handed over and nothing flushing."""
        return self._epoch is None and not self._inbox

    def _on_failure(
        self, err: ClientError, topic: str, key: bytes | None, value: bytes | None
    ) -> None:
        """The producer's failure callback: called for failed messages only."""
        self._failures.append(((topic, key, value), err))

    def _match_failures(self, epoch: list[Item], errors: Errors) -> None:
        """Fail the items of the epoch (a Paired item's records one by one) whose outputs
        could not be delivered."""
        failed = dict(self._failures)
        self._failures.clear()
        for index, item in enumerate(epoch):
            paired = type(item) is Paired
            for at, (topic, value, key, _) in enumerate(item[1]):
                err = failed.get((topic, key, value))
                if err is None:
                    continue
                if paired:
                    errors.setdefault((index, at), err)
                else:
                    errors.setdefault(index, err)
                    break

    @staticmethod
    def _produce(producer: Producer, outputs: list[Produced]) -> BaseException | None:
        """Hand the outputs to the producer; the client's refusal, if any."""
        produce = producer.produce
        for topic, value, key, headers in outputs:
            while True:
                try:
                    produce(topic, value, key, headers)
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except ClientError as exc:
                    return exc
        return None

    def close(self, timeout: float) -> None:
        """Stop the thread; what is still unacknowledged is not reported."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
