"""In-memory producers behind `seam.Producer` and `seam.TransactionalProducer`.

produce() only queues a record, due for delivery `faults.delivery_delay` virtual seconds
later; poll() and flush() never wait: they deliver what is due (appending it to the log,
or failing it by the armed faults) and run the callbacks, with the cluster unlocked.
Records of one partition are delivered in the order produced, as with an idempotent
producer: one not yet due holds back the later ones of its partition.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parafka.core.record import Produced
from parafka.core.seam import (
    ClientError,
    DeliveryCallback,
    FailedCallback,
    Headers,
    OutHeaders,
)
from parafka.testing.memory.faults import error
from parafka.testing.memory.log import MemoryMessage, Transaction, TxnState, key_partition
from parafka.testing.memory.state import ClusterState

DEFAULT_QUEUE_MAX_MESSAGES = 100_000  # librdkafka's queue.buffering.max.messages
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's message.max.bytes
NO_OFFSET = -1001  # what a failed delivery's message reports as its offset


@dataclass
class InFlight:
    """A produced record waiting for its delivery."""

    due: float
    topic: str
    partition: int  # -1: the topic does not exist
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    timestamp_ms: int
    on_delivery: DeliveryCallback | None
    txn: Transaction | None


Report = tuple[ClientError | None, InFlight, MemoryMessage]


def _as_bytes(data: bytes | str | None, what: str) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise ClientError(
        f"a record {what} must be bytes, str or None, not {type(data).__name__}", "INVALID_ARG"
    )


class MemoryProducer:
    """A producer to an `InMemoryCluster` (made by `InMemoryCluster.producer`)."""

    def __init__(
        self, state: ClusterState, config: Mapping[str, Any], on_failed: FailedCallback | None
    ) -> None:
        self._state = state
        self._on_failed = on_failed
        self._max_queue = int(
            config.get("queue.buffering.max.messages", DEFAULT_QUEUE_MAX_MESSAGES)
        )
        self._max_bytes = int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self._in_flight: list[InFlight] = []
        self._turns: dict[str, itertools.count[int]] = {}
        self.crashed = False

    @property
    def in_flight(self) -> int:
        """Records produced and not yet delivered (or failed)."""
        return len(self._in_flight)

    def crash(self) -> None:
        """Die at once: records not yet delivered are lost, no callback runs."""
        with self._state.lock:
            self._in_flight.clear()
            self.crashed = True

    # -- the seam ------------------------------------------------------------------------
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: OutHeaders | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        state = self._state
        with state.lock:
            self._usable()
            key_bytes, value_bytes = _as_bytes(key, "key"), _as_bytes(value, "value")
            size = len(key_bytes or b"") + len(value_bytes or b"")
            if size > self._max_bytes:
                raise ClientError(
                    f"a record of {size} bytes is over message.max.bytes={self._max_bytes}",
                    "MSG_SIZE_TOO_LARGE",
                )
            if len(self._in_flight) >= self._max_queue:
                raise BufferError(
                    f"local queue full: {len(self._in_flight)} records undelivered "
                    f"(queue.buffering.max.messages={self._max_queue}); poll() and try again"
                )
            txn = self._transaction_for_produce()
            self._in_flight.append(
                InFlight(
                    state.clock.now() + state.faults.delivery_delay,
                    topic,
                    self._partition(topic, key_bytes),
                    key_bytes,
                    value_bytes,
                    _headers(headers),
                    state.now_ms(),
                    on_delivery,
                    txn,
                )
            )

    def produce_many(self, records: Sequence[Produced]) -> list[tuple[int, ClientError]]:
        refused = []
        for at, (topic, value, key, headers) in enumerate(records):
            while True:
                try:
                    self.produce(topic, value, key, headers)
                    break
                except BufferError:
                    self.poll(0.05)  # local queue full: let deliveries drain
                except ClientError as exc:
                    refused.append((at, exc))
                    break
        return refused

    def poll(self, timeout: float) -> int:
        served = self._report(self._deliver())
        if not served and self._in_flight and self._state.idle(timeout):
            served = self._report(self._deliver())
        return served

    def flush(self, timeout: float) -> int:
        self._report(self._deliver())
        if self._in_flight and self._state.idle(timeout):
            self._report(self._deliver())
        return len(self._in_flight)

    # -- inside --------------------------------------------------------------------------
    def _usable(self) -> None:
        if self.crashed:
            raise RuntimeError("this in-memory producer has crashed")

    def _transaction_for_produce(self) -> Transaction | None:
        return None

    def _partition(self, topic: str, key: bytes | None) -> int:
        count = self._state.partition_count(topic)
        if count == 0:
            return -1
        if key is not None:
            return key_partition(key, count)
        return next(self._turns.setdefault(topic, itertools.count())) % count

    def _deliver(self, everything: bool = False) -> list[Report]:
        """Deliver (or fail) each due record whose partition is not held back by an
        earlier one; `everything`: as if all were due."""
        state = self._state
        reports: list[Report] = []
        with state.lock:
            now = state.clock.now()
            blocked: set[tuple[str, int]] = set()
            waiting: list[InFlight] = []
            for item in self._in_flight:
                slot = (item.topic, item.partition)
                if slot in blocked or (item.due > now and not everything):
                    blocked.add(slot)
                    waiting.append(item)
                    continue
                reports.append(self._deliver_one(item))
            self._in_flight = waiting
        return reports

    def _deliver_one(self, item: InFlight) -> Report:
        state = self._state
        code = state.faults.delivery_error(item.topic, item.key, item.value)
        if item.partition < 0:
            code = "_UNKNOWN_TOPIC"
        if item.txn is not None and item.txn.state is not TxnState.OPEN:
            code = "_PURGE_QUEUE"  # its transaction ended (fenced, aborted) before delivery
        if code is None:
            log = state.log((item.topic, item.partition))
            message = log.append(item.key, item.value, item.headers, item.timestamp_ms, item.txn)
            return None, item, message
        failure = error(code, f"delivery to {item.topic!r} failed")
        self._delivery_failed(failure)
        return failure, item, failed_message(item)

    def _delivery_failed(self, failure: ClientError) -> None:
        """A hook: a transactional producer must abort the transaction."""

    def _report(self, reports: list[Report]) -> int:
        served = 0
        for failure, item, message in reports:
            if item.on_delivery is not None:
                item.on_delivery(failure, message)
                served += 1
            elif failure is not None and self._on_failed is not None:
                self._on_failed(failure, item.topic, item.key, item.value)
                served += 1
        return served


def failed_message(item: InFlight) -> MemoryMessage:
    return MemoryMessage(
        item.topic,
        item.partition,
        NO_OFFSET,
        item.key,
        item.value,
        item.headers,
        item.timestamp_ms,
    )


def _headers(headers: OutHeaders | None) -> Headers | None:
    if headers is None:
        return None
    return [(name, _as_bytes(value, f"header {name!r}")) for name, value in headers]
