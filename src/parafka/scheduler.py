"""The ordering scheduler: decides which received records may start now. Pure.

One abstraction covers the three ordering modes (STYLE.md): every record maps to a
shard, and a shard runs one record at a time, in offset order.

- ``partition``: the shard is (topic, partition);
- ``key``: the shard is (topic, partition, key);
- ``unordered``: every record is its own shard (kept in one FIFO, since such shards
  never wait for each other).

A record that fails and waits for a retry keeps its shard: in ``key`` mode only its key
waits. The number of records started and not finished is capped by ``concurrency``;
records waiting for a retry do not take a slot.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Literal

from parafka.record import Record

Ordering = Literal["partition", "key", "unordered"]
ORDERINGS: tuple[Ordering, ...] = ("key", "partition", "unordered")
TopicPartition = tuple[str, int]


def _partition_shard(record: Record) -> Hashable:
    return (record.topic, record.partition)


def _key_shard(record: Record) -> Hashable:
    return (record.topic, record.partition, record.key)


SHARD_FUNCTIONS: dict[str, Callable[[Record], Hashable] | None] = {
    "partition": _partition_shard,
    "key": _key_shard,
    "unordered": None,  # each record is its own shard
}


class Scheduler:
    """Queues records per shard and hands out those allowed to start."""

    def __init__(self, ordering: Ordering, concurrency: int) -> None:
        if ordering not in SHARD_FUNCTIONS:
            raise ValueError(f"unknown ordering {ordering!r}")
        self.ordering = ordering
        self.concurrency = concurrency
        self._shard_of = SHARD_FUNCTIONS[ordering]
        # Ordered modes: shard -> its records, oldest first. The head is the one running
        # or waiting for a retry when the shard is in _busy.
        self._queues: dict[Hashable, deque[Record]] = {}
        self._busy: set[Hashable] = set()
        self._ready: deque[Hashable] = deque()  # shards whose head may start
        # Unordered mode: records that may start.
        self._fifo: deque[Record] = deque()
        # Records waiting for a retry: (due time, tie-breaker, record).
        self._retries: list[tuple[float, int, Record]] = []
        self._seq = itertools.count()
        # Partitions held back: records above the limit offset do not start.
        self._limits: dict[TopicPartition, int] = {}
        self._parked: list[Hashable] = []
        self.in_flight = 0
        self.held = 0  # records queued + in flight + waiting for retry

    # -- intake ---------------------------------------------------------------
    def add(self, record: Record) -> None:
        """Queue a newly received record (records of a partition arrive in offset order)."""
        self.held += 1
        shard_of = self._shard_of
        if shard_of is None:
            self._fifo.append(record)
            return
        shard = shard_of(record)
        queue = self._queues.get(shard)
        if queue is None:
            self._queues[shard] = deque((record,))
            self._ready.append(shard)
        else:
            queue.append(record)

    # -- dispatch -------------------------------------------------------------
    def take(self, limit: int | None = None) -> list[Record]:
        """Records that may start now, marked as in flight (at most the free slots)."""
        free = self.concurrency - self.in_flight
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return []
        taken: list[Record] = []
        if self._shard_of is None:
            fifo = self._fifo
            if self._limits:
                taken = self._take_limited_fifo(free)
            while fifo and len(taken) < free:
                taken.append(fifo.popleft())
        else:
            ready, queues, busy, limits = self._ready, self._queues, self._busy, self._limits
            while ready and len(taken) < free:
                shard = ready.popleft()
                queue = queues.get(shard)
                if queue is None or shard in busy:
                    continue  # dropped by a revoke, or a stale entry
                head = queue[0]
                if limits and self._over_limit(head):
                    self._parked.append(shard)
                    continue
                busy.add(shard)
                taken.append(head)
        self.in_flight += len(taken)
        return taken

    def _take_limited_fifo(self, free: int) -> list[Record]:
        taken: list[Record] = []
        keep: deque[Record] = deque()
        fifo = self._fifo
        while fifo and len(taken) < free:
            record = fifo.popleft()
            (keep if self._over_limit(record) else taken).append(record)
        keep.extend(fifo)
        self._fifo = keep
        return taken

    def _over_limit(self, record: Record) -> bool:
        limit = self._limits.get((record.topic, record.partition))
        return limit is not None and record.offset > limit

    # -- completion -----------------------------------------------------------
    def done(self, record: Record) -> None:
        """A started record finished (or was given up): its shard may start the next one."""
        self.in_flight -= 1
        self.held -= 1
        self._release_head(record)

    def done_many(self, records: list[Record]) -> None:
        """`done` for each record, in order."""
        count = len(records)
        self.in_flight -= count
        self.held -= count
        if self._shard_of is not None:
            for record in records:
                self._release_head(record)

    def _release_head(self, record: Record) -> None:
        if self._shard_of is None:
            return
        shard = self._shard_of(record)
        queue = self._queues.get(shard)
        if queue is None or not queue or queue[0] is not record:
            return  # its partition was revoked while it ran
        queue.popleft()
        self._busy.discard(shard)
        if queue:
            self._ready.append(shard)
        else:
            del self._queues[shard]

    def retry(self, record: Record, due: float) -> None:
        """A started record failed and will start again at `due`; its shard keeps waiting."""
        self.in_flight -= 1
        heapq.heappush(self._retries, (due, next(self._seq), record))

    def release_due(self, now: float) -> int:
        """Make records whose retry time has come startable again. Returns how many."""
        retries, released = self._retries, 0
        while retries and retries[0][0] <= now:
            record = heapq.heappop(retries)[2]
            released += 1
            if self._shard_of is None:
                self._fifo.appendleft(record)
                continue
            shard = self._shard_of(record)
            queue = self._queues.get(shard)
            if queue is not None and queue and queue[0] is record:
                self._busy.discard(shard)
                self._ready.appendleft(shard)
        return released

    def next_retry_due(self) -> float | None:
        return self._retries[0][0] if self._retries else None

    @property
    def waiting_retry(self) -> int:
        return len(self._retries)

    @property
    def queued(self) -> int:
        """Records received and not started (excluding those waiting for a retry)."""
        return self.held - self.in_flight - len(self._retries)

    # -- throttling -------------------------------------------------------------
    def limit(self, partition: TopicPartition, max_offset: int | None) -> None:
        """Start no record of `partition` above `max_offset` (None lifts the limit)."""
        if max_offset is None:
            self._limits.pop(partition, None)
        else:
            self._limits[partition] = max_offset
        if self._parked:
            self._ready.extendleft(reversed(self._parked))
            self._parked.clear()

    # -- rebalance ------------------------------------------------------------
    def drop_partitions(self, partitions: Iterable[TopicPartition]) -> int:
        """Forget queued and retry-waiting records of revoked partitions.

        Records in flight stay counted until they finish (their shard stays busy, so a
        redelivered record of the same key never overlaps them). Returns how many
        records were dropped.
        """
        gone = set(partitions)
        if not gone:
            return 0
        dropped = 0

        def revoked(record: Record) -> bool:
            return (record.topic, record.partition) in gone

        retrying = {id(entry[2]) for entry in self._retries if revoked(entry[2])}
        self._retries = [entry for entry in self._retries if id(entry[2]) not in retrying]
        heapq.heapify(self._retries)
        if self._shard_of is None:
            before = len(self._fifo)
            self._fifo = deque(r for r in self._fifo if not revoked(r))
            dropped += before - len(self._fifo) + len(retrying)
        else:
            for shard, queue in list(self._queues.items()):
                if not revoked(queue[0]):
                    continue
                running = shard in self._busy and id(queue[0]) not in retrying
                keep = 1 if running else 0
                dropped += len(queue) - keep
                if keep:
                    self._queues[shard] = deque((queue[0],))
                else:
                    del self._queues[shard]
                    self._busy.discard(shard)
        for tp in gone:
            self._limits.pop(tp, None)
        self.held -= dropped
        return dropped

    def __len__(self) -> int:
        return self.held
