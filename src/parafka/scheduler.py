"""The ordering scheduler: decides which received records may start now. Pure.

One abstraction covers the three ordering modes (STYLE.md): every record maps to a
shard, and a shard's records run in offset order, never two of them side by side.

- ``partition``: the shard is (topic, partition);
- ``key``: the shard is (topic, partition, key);
- ``unordered``: every record is its own shard (kept in one FIFO, since such shards
  never wait for each other).

`take()` hands out *runs*: up to `run_length` consecutive records of one shard, to be
executed in order by one worker. With slow handlers the run length is 1; with handlers
that take microseconds, runs let a partition or key move many records per hand-over
instead of paying a round trip to the control thread for each.

A record that fails and waits for a retry keeps its shard: in ``key`` mode only its key
waits. Records of a run that were not executed because an earlier one failed are given
back with `unrun()`. The number of records handed out and not settled is capped by
``concurrency``; records waiting for a retry do not count.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from operator import attrgetter
from typing import Literal

from parafka.record import Record

Ordering = Literal["partition", "key", "unordered"]
ORDERINGS: tuple[Ordering, ...] = ("key", "partition", "unordered")
TopicPartition = tuple[str, int]
Run = list[Record]


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
    """Queues records per shard and hands out runs that may start now.

    Invariant (ordered modes): the records of a shard in flight are the first
    ``running[shard]`` records of its queue, and a shard whose head waits for a retry
    has nothing in flight.
    """

    def __init__(self, ordering: Ordering, concurrency: int, run_length: int = 1) -> None:
        if ordering not in SHARD_FUNCTIONS:
            raise ValueError(f"unknown ordering {ordering!r}")
        self.ordering = ordering
        self.concurrency = concurrency  # records in flight at most
        self.run_length = run_length  # consecutive records of one shard per run at most
        self._shard_of = SHARD_FUNCTIONS[ordering]
        self._queues: dict[Hashable, deque[Record]] = {}  # shard -> records, oldest first
        self._running: dict[Hashable, int] = {}  # shard -> records in flight
        self._waiting: set[Hashable] = set()  # shards whose head waits for a retry
        self._ready: deque[Hashable] = deque()  # shards that may start (may hold stale ones)
        self._fifo: deque[Record] = deque()  # unordered mode: records that may start
        self._retries: list[tuple[float, int, Record]] = []  # (due, tie-breaker, record)
        self._seq = itertools.count()
        self._limits: dict[TopicPartition, int] = {}  # partition -> highest offset to start
        self._parked: list[Hashable] = []  # shards held back by a limit
        self.in_flight = 0
        self.held = 0  # records queued + in flight + waiting for retry

    # -- intake ---------------------------------------------------------------
    def add(self, record: Record) -> None:
        """Queue a newly received record."""
        self.add_many([record])

    def add_many(self, records: list[Record]) -> None:
        """Queue newly received records (those of a partition arrive in offset order)."""
        shard_of = self._shard_of
        self.held += len(records)
        if shard_of is None:
            self._fifo.extend(records)
            return
        queues, running, ready = self._queues, self._running, self._ready
        for record in records:
            shard = record._shard = shard_of(record)
            queue = queues.get(shard)
            if queue is None:
                queues[shard] = deque((record,))
                if shard not in running:
                    ready.append(shard)
            else:
                queue.append(record)

    # -- dispatch -------------------------------------------------------------
    def take(self, limit: int | None = None) -> list[Run]:
        """Runs that may start now, marked as in flight (at most the free slots).

        Each run holds consecutive records of one shard, in offset order, and must be
        executed in that order by one worker.
        """
        free = self.concurrency - self.in_flight
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return []
        runs = self._take_fifo(free) if self._shard_of is None else self._take_shards(free)
        return runs

    def _take_fifo(self, free: int) -> list[Run]:
        fifo, size = self._fifo, max(1, self.run_length)
        if self._limits:
            startable: list[Record] = []
            kept: deque[Record] = deque()
            while fifo and len(startable) < free:
                record = fifo.popleft()
                (kept if self._over_limit(record) else startable).append(record)
            kept.extend(fifo)
            self._fifo = kept
        else:
            count = min(free, len(fifo))
            startable = [fifo.popleft() for _ in range(count)]
        self.in_flight += len(startable)
        if size == 1:
            return [[record] for record in startable]
        return [startable[i : i + size] for i in range(0, len(startable), size)]

    def _take_shards(self, free: int) -> list[Run]:
        ready, queues, running, waiting = self._ready, self._queues, self._running, self._waiting
        size, limits, runs, taken = max(1, self.run_length), self._limits, [], 0
        while ready and taken < free:
            shard = ready.popleft()
            queue = queues.get(shard)
            if queue is None or shard in running or shard in waiting:
                continue  # stale entry: dropped, already running, or waiting for a retry
            count = min(size, len(queue), free - taken)
            if limits:
                count = self._within_limit(queue, count)
                if count == 0:
                    self._parked.append(shard)
                    continue
            run = [queue[0]] if count == 1 else list(itertools.islice(queue, count))
            running[shard] = count
            runs.append(run)
            taken += count
        self.in_flight += taken
        return runs

    def _within_limit(self, queue: deque[Record], count: int) -> int:
        head = queue[0]
        limit = self._limits.get((head.topic, head.partition))
        if limit is None:
            return count
        return sum(1 for record in itertools.islice(queue, count) if record.offset <= limit)

    def _over_limit(self, record: Record) -> bool:
        limit = self._limits.get((record.topic, record.partition))
        return limit is not None and record.offset > limit

    # -- settling -------------------------------------------------------------
    def done(self, record: Record) -> None:
        """A started record finished (or was given up): it leaves the scheduler."""
        self.in_flight -= 1
        self.held -= 1
        if self._shard_of is not None:
            self._settle([record], remove=True)

    def done_many(self, records: list[Record]) -> None:
        """`done` for each record, in order. The records of a shard that follow each other
        (a run comes back whole) are settled together."""
        count = len(records)
        self.in_flight -= count
        self.held -= count
        if self._shard_of is not None:
            for _, run in itertools.groupby(records, attrgetter("_shard")):
                self._settle(list(run), remove=True)

    def retry(self, record: Record, due: float) -> None:
        """A started record failed and starts again at `due`; its shard waits for it."""
        self.in_flight -= 1
        if self._shard_of is not None:
            self._waiting.add(self._settle([record], remove=False))
        heapq.heappush(self._retries, (due, next(self._seq), record))

    def unrun(self, records: list[Record]) -> None:
        """Started records that were not executed (an earlier record of their run failed):
        they may start again, ahead of newer records."""
        self.in_flight -= len(records)
        if self._shard_of is None:
            self._fifo.extendleft(reversed(records))
            return
        for record in records:
            self._settle([record], remove=False, front=True)

    def _settle(self, records: list[Record], remove: bool, front: bool = False) -> Hashable:
        """Account for in-flight records of one ordered shard (removing them from its queue
        when they are done); frees the shard when its run has settled."""
        shard: Hashable = records[0]._shard
        queue = self._queues.get(shard)
        if remove and queue is not None:
            for record in records:
                if queue and queue[0] is record:
                    queue.popleft()
                else:
                    queue.remove(record)  # an earlier record of its run awaits its outputs
        count = self._running.get(shard, 0)
        if count > len(records):
            self._running[shard] = count - len(records)
            return shard
        self._running.pop(shard, None)
        if queue is not None and not queue:
            del self._queues[shard]
            self._waiting.discard(shard)
        elif queue is not None and shard not in self._waiting:
            if front:
                self._ready.appendleft(shard)
            else:
                self._ready.append(shard)
        return shard

    def release_due(self, now: float) -> int:
        """Make records whose retry time has come startable again. Returns how many."""
        retries, released = self._retries, 0
        while retries and retries[0][0] <= now:
            record = heapq.heappop(retries)[2]
            released += 1
            if self._shard_of is None:
                self._fifo.appendleft(record)
                continue
            shard = record._shard
            queue = self._queues.get(shard)
            if queue and queue[0] is record and shard in self._waiting:
                self._waiting.discard(shard)
                if shard not in self._running:
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

    # -- throttling -----------------------------------------------------------
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

        Records in flight stay counted until they settle, and their shard stays busy, so
        a redelivered record of the same shard never overlaps them. Returns how many
        records were dropped.
        """
        gone = set(partitions)
        if not gone:
            return 0

        def revoked(record: Record) -> bool:
            return (record.topic, record.partition) in gone

        dropped = 0
        kept = [entry for entry in self._retries if not revoked(entry[2])]
        retry_dropped = len(self._retries) - len(kept)
        self._retries = kept
        heapq.heapify(self._retries)
        if self._shard_of is None:
            before = len(self._fifo)
            self._fifo = deque(r for r in self._fifo if not revoked(r))
            dropped = before - len(self._fifo) + retry_dropped
        else:
            for shard, queue in list(self._queues.items()):
                if not revoked(queue[0]):
                    continue
                keep = self._running.get(shard, 0)
                dropped += len(queue) - keep
                self._waiting.discard(shard)
                if keep:
                    self._queues[shard] = deque(itertools.islice(queue, keep))
                else:
                    del self._queues[shard]
        for tp in gone:
            self._limits.pop(tp, None)
        self.held -= dropped
        return dropped

    def trim(self, partition: TopicPartition, cutoff: int) -> int:
        """Forget queued records of `partition` at or above `cutoff` (none of them may
        have started). Returns how many were removed."""

        def gone(record: Record) -> bool:
            return (record.topic, record.partition) == partition and record.offset >= cutoff

        removed = 0
        if self._shard_of is None:
            before = len(self._fifo)
            self._fifo = deque(r for r in self._fifo if not gone(r))
            removed = before - len(self._fifo)
        else:
            for shard, queue in list(self._queues.items()):
                while queue and gone(queue[-1]):
                    queue.pop()
                    removed += 1
                if not queue and shard not in self._running:
                    del self._queues[shard]
                    self._waiting.discard(shard)
        self.held -= removed
        return removed

    def __len__(self) -> int:
        return self.held
