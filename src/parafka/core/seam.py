"""The Kafka seam: what the engine needs of a Kafka client, and nothing more.

The engine (control loop, outputs, transactions, dead letters) talks only to these
protocols. `parafka.kafka.confluent` adapts confluent-kafka (librdkafka) to them, the one
production implementation; `parafka.testing.memory` is an in-memory cluster behind the
same protocols, driven by a virtual clock, for the deterministic simulator and for users'
own tests. The types here are plain Python: no confluent_kafka object crosses the seam.

Semantics every implementation keeps (the contract tests check them on both):

- `Consumer.consume(n, timeout)` returns as soon as at least one record is there (up to
  `n`), or an empty list after `timeout`; rebalance callbacks run inside it, on the
  calling thread, like librdkafka serves them inside poll().
- Records of one partition come in offset order; after `seek(tp, o)` the next one of `tp`
  is at `o` or later; a paused partition yields nothing until resumed.
- `commit()` reports its outcome per partition through `ConsumerEvents.on_commit`, for
  synchronous and asynchronous commits alike (a synchronous one before it returns).
- A producer's `produce()` raises `BufferError` when its local queue is full (poll, then
  try again) and `ClientError` when it refuses the record outright; a delivery that fails
  later is reported to the `on_delivery` callback (served by poll/flush) or, for a
  producer made with `on_failed`, only failures are reported, to that.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from parafka.core.errors import wire_name
from parafka.core.record import Produced

TP = tuple[str, int]  # (topic, partition): the one partition type of the engine
Headers = list[tuple[str, bytes | None]]
OutHeaders = list[tuple[str, bytes | str | None]]


@wire_name("parafka.seam.ClientError")
class ClientError(Exception):
    """An error reported by the Kafka client (or the in-memory cluster).

    `code` is the client's error name (e.g. "MSG_SIZE_TOO_LARGE"); the three flags say
    what can be done about it: nothing (`fatal`), try again (`retriable`), or abort the
    running transaction (`txn_requires_abort`)."""

    def __init__(
        self,
        reason: str,
        code: str = "UNKNOWN",
        *,
        fatal: bool = False,
        retriable: bool = False,
        txn_requires_abort: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.fatal = fatal
        self.retriable = retriable
        self.txn_requires_abort = txn_requires_abort

    def __str__(self) -> str:
        return self.reason


class Offset(NamedTuple):
    """A partition's position to commit or as committed (`offset` None: none committed)."""

    topic: str
    partition: int
    offset: int | None
    metadata: str = ""


class CommitResult(NamedTuple):
    """The outcome of committing one partition's offset."""

    offset: Offset
    error: ClientError | None


class Message(Protocol):
    """A fetched record (confluent_kafka.Message has exactly these methods)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class ConsumerEvents(Protocol):
    """What a consumer reports to the engine, always on the thread that calls consume()
    or commit()."""

    def on_assign(self, partitions: list[TP]) -> None: ...
    def on_revoke(self, partitions: list[TP]) -> None: ...
    def on_lost(self, partitions: list[TP]) -> None: ...
    def on_commit(self, results: list[CommitResult]) -> None: ...
    def on_error(self, error: ClientError) -> None: ...


class Consumer(Protocol):
    """A group member: subscribe, fetch, commit, and steer fetching per partition."""

    def topics(self, timeout: float) -> set[str]:
        """The cluster's topic names; ClientError when it cannot be reached in time."""
        ...

    def subscribe(self, topics: Sequence[str]) -> None: ...

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        """Up to `max_records` records; waits up to `timeout` for the first one."""
        ...

    def commit(self, offsets: Sequence[Offset], asynchronous: bool) -> None:
        """Commit `offsets` (with their metadata); outcomes go to `on_commit`. Raises
        ClientError when the request could not be made at all."""
        ...

    def committed(self, partitions: Sequence[TP], timeout: float) -> list[Offset]:
        """The group's committed offsets (and metadata) of `partitions`."""
        ...

    def pause(self, partitions: Iterable[TP]) -> None: ...
    def resume(self, partitions: Iterable[TP]) -> None: ...

    def read(self, starts: Mapping[TP, int], timeout: float) -> list[Message]:
        """Every record of each partition from its start offset to the end the broker
        reports now, fetched apart from this consumer (its positions and assignment stay
        as they are; the partitions need not be assigned). ClientError when that fails
        within `timeout`."""
        ...

    def seek(self, tp: TP, offset: int) -> None:
        """Fetch `tp` from `offset` next; ClientError when `tp` is not being fetched."""
        ...

    def watermarks(self, tp: TP) -> tuple[int, int] | None:
        """(low, high) as last seen by the client, without asking the broker (None:
        not known yet)."""
        ...

    def partition_count(self, topic: str, timeout: float) -> int | None:
        """How many partitions `topic` has (None: unknown, or it cannot be asked in time)."""
        ...

    def group_metadata(self) -> object:
        """What a transactional producer needs to commit this consumer's offsets."""
        ...

    def close(self) -> None: ...


DeliveryCallback = Callable[[ClientError | None, Message], None]
FailedCallback = Callable[[ClientError, str, bytes | None, bytes | None], None]


class Producer(Protocol):
    """Produces records; deliveries are reported when poll() or flush() serve them."""

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: OutHeaders | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def produce_many(self, records: Sequence[Produced]) -> list[tuple[int, ClientError]]:
        """Produce each record, without a delivery callback, waiting (serving deliveries)
        while the local queue is full. Returns the positions the client refused, with its
        error; the other records are produced."""
        ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` for every record to be delivered; how many are left."""
        ...


class TransactionalProducer(Producer, Protocol):
    """A producer whose records and a consumer's offsets commit atomically."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...

    def send_offsets_to_transaction(
        self, offsets: Sequence[Offset], group_metadata: object, timeout: float
    ) -> None: ...

    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class Kafka(Protocol):
    """Makes clients. `config` is librdkafka-style (the in-memory cluster reads the few
    keys it models: group.id, partition.assignment.strategy, isolation.level, ...)."""

    def consumer(self, config: Mapping[str, Any], events: ConsumerEvents) -> Consumer: ...

    def producer(
        self, config: Mapping[str, Any], on_failed: FailedCallback | None = None
    ) -> Producer:
        """A producer; with `on_failed`, deliveries are reported only when they fail,
        to that one callback (no Python call per delivered record)."""
        ...

    def transactional_producer(self, config: Mapping[str, Any]) -> TransactionalProducer: ...


# -- share groups (KIP-932, experimental) ------------------------------------------------


class Ack(enum.Enum):
    """How a share consumer tells the broker what became of an acquired record."""

    ACCEPT = "accept"  # done: never delivered again
    RELEASE = "release"  # give it back: delivered again (its delivery count grows)
    REJECT = "reject"  # unprocessable: archived, never delivered again


class ShareMessage(Message, Protocol):
    """A record acquired by a share consumer."""

    def delivery_count(self) -> int | None:
        """How many times the group has delivered it, this time included (1 the first)."""
        ...


AckCallback = Callable[[list[tuple[TP, ClientError | None]]], None]


class ShareConsumer(Protocol):
    """A share-group member: records are acquired under a lock, one consumer at a time,
    and each is acknowledged; there are no assignments and no offsets to commit.

    `poll` is refused while any record of the previous poll is unacknowledged; an
    acknowledgement is sent with the next `poll`, `commit` or `close`, and its outcome per
    partition goes to the `on_acknowledged` callback given at creation (served inside
    those calls, on the calling thread)."""

    def subscribe(self, topics: Sequence[str]) -> None: ...

    def poll(self, timeout: float) -> list[ShareMessage]:
        """The records acquired for this member (empty after `timeout`)."""
        ...

    def acknowledge(self, message: ShareMessage, ack: Ack) -> None: ...

    def commit(self) -> None:
        """Send the acknowledgements made so far, without waiting for the answer."""
        ...

    def close(self) -> None:
        """Send what is acknowledged, leave the group; unacknowledged records go back."""
        ...
