"""The engine's record of one Kafka record: its state, its partition's epoch, its shard.

An `Entry` wraps the `Record` a handler sees, so engine state never sits on the user's
object. Only the ledger changes an entry's state (see ledger.py for the transitions).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Final

from parafka.core.record import _RAW, MessageRecord, Record

if TYPE_CHECKING:
    from parafka.core.ledger import Part


class State(enum.Enum):
    """Where a record is. Every entry is in exactly one state."""

    QUEUED = "queued"  # received, may start when its shard is free
    RUNNING = "running"  # handed to the executor
    RETRY_WAIT = "retry-wait"  # failed; starts again at `due` (its shard waits for it)
    SENDING = "sending"  # handler done; its outputs (or its dead letter) await acknowledgement
    HELD = "held"  # exactly-once: outputs wait for older records, then a transaction
    DONE = "done"  # finished; counted in the offsets once every older entry of its shard is
    SETTLED = "settled"  # counted as done in its partition's offsets (final)
    STOPPED = "stopped"  # failed for good with the stop policy: never committed (final)
    DROPPED = "dropped"  # its partition was revoked or trimmed: redelivered later (final)

    # Members are singletons compared by identity: hash them by identity too, in C. Enum's
    # own __hash__ is a Python call (0.2 us against 0.05 for a set lookup, timeit).
    __hash__ = object.__hash__


QUEUED: Final = State.QUEUED
RUNNING: Final = State.RUNNING
RETRY_WAIT: Final = State.RETRY_WAIT
SENDING: Final = State.SENDING
HELD: Final = State.HELD
DONE: Final = State.DONE
SETTLED: Final = State.SETTLED
STOPPED: Final = State.STOPPED
DROPPED: Final = State.DROPPED
# States in which an entry belongs to its shard's current run (the shard is busy).
IN_RUN: Final = frozenset({RUNNING, SENDING, DONE, HELD})
FINAL: Final = frozenset({SETTLED, STOPPED, DROPPED})


class Entry(MessageRecord):
    """One record in the engine: the record a handler sees, plus its partition's
    assignment (`part`), its shard and its state.

    An Entry *is* the `Record` handed to the handler (a subclass of the message-backed
    record): one object per record instead of two, which halves the allocations, and so
    the young garbage collections, on the per-record path (measured: a second wrapper
    object cost about a fifth of the no-op throughput). The public `Record` class carries
    no engine state; only this engine-side subclass does, in private slots the ledger
    alone changes.
    """

    __slots__ = ("due", "first_failure", "part", "received", "shard", "state")

    def __init__(
        self,
        message: Any,
        topic: str,
        partition: int,
        offset: int,
        part: Part,
        shard: Hashable = None,
        received: float = 0.0,
    ) -> None:
        # MessageRecord's fields, set here: one call less per record.
        self._msg = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempt = 1
        self._data = _RAW
        self.part = part
        # its shard's key within its partition (scheduler.py): the record's key in key
        # mode, WHOLE_PARTITION in partition mode, None when unordered
        self.shard = shard
        self.state = QUEUED
        self.received = received  # when the ledger took it in (its clock): the queue wait
        self.due = 0.0  # RETRY_WAIT: when it may start again
        self.first_failure: float | None = None  # wall-clock time of its first failure

    @property
    def record(self) -> Record:
        """The record as the handler sees it (the entry itself)."""
        return self

    @property
    def tp(self) -> tuple[str, int]:
        return self.part.tp

    def describe(self) -> str:
        """For debugging the engine: where the record is and its state."""
        return f"{self.topic}[{self.partition}]@{self.offset} {self.state.value}"
