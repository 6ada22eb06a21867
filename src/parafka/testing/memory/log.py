"""Topics as append-only partition logs, with transactional visibility.

Each partition is a list of entries at offsets 0, 1, 2, ... A record written inside a
transaction belongs to it: while the transaction is open a read_committed reader stops at
its first record (the last stable offset, LSO); once committed the record is visible, once
aborted it is hidden for good. Ending a transaction appends a control marker to every
partition it wrote to, as Kafka does, so transactional topics have offset gaps.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import Enum

from parafka.core.seam import TP, Headers

READ_COMMITTED = "read_committed"
READ_UNCOMMITTED = "read_uncommitted"
TIMESTAMP_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME


class TxnState(Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


@dataclass(eq=False)
class Transaction:
    """One transaction of one producer: the partitions it wrote to, and its outcome."""

    transactional_id: str
    state: TxnState = TxnState.OPEN
    partitions: set[TP] = field(default_factory=set)


@dataclass(frozen=True)
class MemoryMessage:
    """A fetched (or delivered) record; the methods mirror confluent_kafka.Message."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: Headers | None
    _timestamp_ms: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return None if self._headers is None else list(self._headers)

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._timestamp_ms

    def error(self) -> None:
        """Always None: the in-memory consumer returns good records only."""
        return None


@dataclass(frozen=True)
class Entry:
    """One slot of a partition log: a record (or a transaction's control marker)."""

    message: MemoryMessage
    txn: Transaction | None = None
    control: bool = False

    def visible(self, isolation: str) -> bool:
        """Whether a reader at `isolation` sees this entry (LSO aside)."""
        if self.control:
            return False
        if self.txn is None or isolation == READ_UNCOMMITTED:
            return True
        return self.txn.state is TxnState.COMMITTED


class PartitionLog:
    """One partition: entries from offset 0, and the open transactions that hold its LSO."""

    def __init__(self, topic: str, partition: int) -> None:
        self.tp: TP = (topic, partition)
        self.entries: list[Entry] = []
        self._open_first: dict[int, int] = {}  # id(transaction) -> its first offset here

    @property
    def high_watermark(self) -> int:
        return len(self.entries)

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the oldest open transaction here, else the high watermark."""
        return min(self._open_first.values(), default=self.high_watermark)

    def end(self, isolation: str) -> int:
        """The offset a reader at `isolation` may not read at or past."""
        return self.last_stable_offset if isolation == READ_COMMITTED else self.high_watermark

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp_ms: int,
        txn: Transaction | None = None,
    ) -> MemoryMessage:
        message = MemoryMessage(
            self.tp[0], self.tp[1], len(self.entries), key, value, headers, timestamp_ms
        )
        self.entries.append(Entry(message, txn))
        if txn is not None:
            txn.partitions.add(self.tp)
            self._open_first.setdefault(id(txn), message.offset())
        return message

    def end_transaction(self, txn: Transaction, timestamp_ms: int) -> None:
        """Append `txn`'s control marker and release the LSO it held."""
        self._open_first.pop(id(txn), None)
        offset = len(self.entries)
        marker = MemoryMessage(self.tp[0], self.tp[1], offset, None, None, None, timestamp_ms)
        self.entries.append(Entry(marker, txn, control=True))

    def read(self, start: int, isolation: str, limit: int) -> tuple[list[MemoryMessage], int]:
        """Up to `limit` records visible at `isolation` from offset `start`; also the
        position after the last entry looked at (past hidden entries, up to the end)."""
        end = self.end(isolation)
        found: list[MemoryMessage] = []
        position = start
        while position < end and len(found) < limit:
            entry = self.entries[position]
            if entry.visible(isolation):
                found.append(entry.message)
            position += 1
        return found, position

    def messages(self, isolation: str) -> list[MemoryMessage]:
        return self.read(0, isolation, len(self.entries))[0]


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: CRC32 of the key, stable across runs (librdkafka's
    default partitioner hashes keys with CRC32 too, though not always to the same number)."""
    return zlib.crc32(key) % partitions
