"""The ordering scheduler: decides which received records may start now. Pure.

One abstraction covers the three ordering modes (STYLE.md): every record maps to a
shard, and a shard's records run in offset order, never two runs of it side by side.

- ``partition``: the shard is (topic, partition);
- ``key``: the shard is (topic, partition, key);
- ``unordered``: every record is its own shard (kept in one FIFO, since such shards
  never wait for each other).

`take()` hands out *runs*: up to `run_length` consecutive entries of one shard, to be
executed in order by one worker. With slow handlers the run length is 1; with handlers
that take microseconds, runs let a partition or key move many records per hand-over.

The scheduler works on `Entry` objects whose state the ledger sets; it only keeps the
queues. An ordered shard is *busy* from `take()` until every entry of its run is
resolved: done and popped from the head of its queue (`finished`), waiting for a retry
(`retry`), or put back (`unrun`). It is *ready* when it is not busy and its head entry is
queued (not waiting for its retry). Entries leave a shard's queue only from its head, in
offset order: that is what makes "done" in the offsets follow the shard's order.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Literal

from parafka.entry import DONE, HELD, IN_RUN, QUEUED, RETRY_WAIT, Entry
from parafka.record import Record

Ordering = Literal["partition", "key", "unordered"]
ORDERINGS: tuple[Ordering, ...] = ("key", "partition", "unordered")
TP = tuple[str, int]
Run = list[Entry]


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
    """Queues entries per shard and hands out runs that may start now.

    Invariants (ordered modes): a busy shard's run is a prefix of its queue, counted in
    ``_busy``; a ready shard is not busy and its head is QUEUED; ``in_flight`` is the
    number of entries handed out and not resolved.
    """

    def __init__(self, ordering: Ordering, concurrency: int, run_length: int = 1) -> None:
        if ordering not in SHARD_FUNCTIONS:
            raise ValueError(f"unknown ordering {ordering!r}")
        self.ordering = ordering
        self.concurrency = concurrency  # entries in flight at most
        self.run_length = run_length  # consecutive entries of one shard per run at most
        self.shard_of = SHARD_FUNCTIONS[ordering]
        self._queues: dict[Hashable, deque[Entry]] = {}  # shard -> entries, oldest first
        self._busy: dict[Hashable, int] = {}  # shard -> entries of its run not resolved
        self._ready: deque[Hashable] = deque()  # shards that may start (may hold stale ones)
        self._fifo: deque[Entry] = deque()  # unordered mode: entries that may start
        self._retries: list[tuple[float, int, Entry]] = []  # (due, tie-breaker, entry)
        self._seq = itertools.count()
        self._limits: dict[TP, int] = {}  # partition -> highest offset to start
        self._parked: list[Hashable] = []  # shards held back by a limit
        self.in_flight = 0
        self.queued = 0  # entries that may start (QUEUED), excluding retry waits

    # -- intake ---------------------------------------------------------------
    def add_many(self, entries: list[Entry]) -> None:
        """Queue newly received entries (those of a partition arrive in offset order;
        the ledger has set their shards)."""
        self.queued += len(entries)
        if self.shard_of is None:
            self._fifo.extend(entries)
            return
        queues, busy, ready = self._queues, self._busy, self._ready
        for entry in entries:
            shard = entry.shard
            queue = queues.get(shard)
            if queue is None:
                queues[shard] = deque((entry,))
                if shard not in busy:
                    ready.append(shard)
            else:
                queue.append(entry)

    # -- dispatch -------------------------------------------------------------
    def take(self, limit: int | None = None) -> list[Run]:
        """Runs that may start now (at most the free slots); the caller marks them
        RUNNING. Each run holds consecutive entries of one shard, in offset order."""
        free = self.concurrency - self.in_flight
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return []
        runs = self._take_fifo(free) if self.shard_of is None else self._take_shards(free)
        return runs

    def _take_fifo(self, free: int) -> list[Run]:
        fifo, size = self._fifo, max(1, self.run_length)
        if self._limits:
            startable: list[Entry] = []
            kept: deque[Entry] = deque()
            while fifo and len(startable) < free:
                entry = fifo.popleft()
                (kept if self._over_limit(entry) else startable).append(entry)
            kept.extend(fifo)
            self._fifo = kept
        else:
            count = min(free, len(fifo))
            startable = [fifo.popleft() for _ in range(count)]
        self.in_flight += len(startable)
        self.queued -= len(startable)
        if size == 1:
            return [[entry] for entry in startable]
        return [startable[i : i + size] for i in range(0, len(startable), size)]

    def _take_shards(self, free: int) -> list[Run]:
        ready, queues, busy = self._ready, self._queues, self._busy
        size, limits, runs, taken = max(1, self.run_length), self._limits, [], 0
        while ready and taken < free:
            shard = ready.popleft()
            queue = queues.get(shard)
            if queue is None or shard in busy or queue[0].state is not QUEUED:
                continue  # stale entry: gone, running, or its head waits for a retry
            count = len(queue)
            if count > 1:  # a run stops before an entry waiting for its retry
                count = min(size, count, free - taken)
                count = next(
                    (
                        i
                        for i, e in enumerate(itertools.islice(queue, count))
                        if e.state is not QUEUED
                    ),
                    count,
                )
            if limits:
                count = self._within_limit(queue, count)
                if count == 0:
                    self._parked.append(shard)
                    continue
            run = [queue[0]] if count == 1 else list(itertools.islice(queue, count))
            busy[shard] = count
            runs.append(run)
            taken += count
        self.in_flight += taken
        self.queued -= taken
        return runs

    def _within_limit(self, queue: deque[Entry], count: int) -> int:
        limit = self._limits.get(queue[0].part.tp)
        if limit is None:
            return count
        return sum(1 for entry in itertools.islice(queue, count) if entry.offset <= limit)

    def _over_limit(self, entry: Entry) -> bool:
        limit = self._limits.get(entry.part.tp)
        return limit is not None and entry.offset > limit

    # -- resolving ------------------------------------------------------------
    def finished(self, entries: list[Entry]) -> list[Entry]:
        """Entries of runs became DONE or HELD (state set by the ledger). Returns the
        entries that leave their shards now, oldest first per shard: the finished prefix
        of each touched shard's queue. A finished entry behind an unfinished one of its
        shard stays until that one finishes (or fails, and then it runs again)."""
        if self.shard_of is None:
            self.in_flight -= len(entries)
            return entries
        left: list[Entry] = []
        last: Hashable = _NO_SHARD
        queues, busy = self._queues, self._busy
        for entry in entries:
            shard = entry.shard
            if shard == last:
                continue  # runs come back whole: one pass per shard
            last = shard
            queue = queues.get(shard)
            if queue is None:
                continue
            popped = 0
            while queue and ((state := queue[0].state) is DONE or state is HELD):
                left.append(queue.popleft())
                popped += 1
            if not popped:
                continue
            if not queue and busy.get(shard) == popped:  # the common case, written out
                del busy[shard], queues[shard]
            else:
                self._resolved(shard, queue, popped)
        self.in_flight -= len(left)
        return left

    def retry(self, entry: Entry) -> None:
        """A run's entry failed and waits (state RETRY_WAIT, `entry.due` set); its shard
        waits for it."""
        heapq.heappush(self._retries, (entry.due, next(self._seq), entry))
        self.in_flight -= 1
        if self.shard_of is not None:
            self._resolved(entry.shard, self._queues.get(entry.shard), 1)

    def hold_back(self, entry: Entry) -> None:
        """A run's entry failed for good and stays unfinished (state STOPPED): it keeps
        its place at the head of its shard, so nothing after it ever counts as done."""
        self.in_flight -= 1
        if self.shard_of is not None:
            self._resolved(entry.shard, self._queues.get(entry.shard), 1)

    def unrun(self, entries: list[Entry]) -> None:
        """Entries of runs that must start again (state set back to QUEUED): not run after
        an earlier failure, or rolled back because an earlier entry of their shard
        failed. They keep their place, ahead of newer entries."""
        self.in_flight -= len(entries)
        self.queued += len(entries)
        if self.shard_of is None:
            self._fifo.extendleft(reversed(entries))
            return
        for shard, group in itertools.groupby(entries, _shard):
            self._resolved(shard, self._queues.get(shard), len(list(group)), front=True)

    def discard(self, entries: list[Entry]) -> None:
        """Entries of runs that are given up without finishing (their partition was
        revoked): they leave their shards wherever they are."""
        self.in_flight -= len(entries)
        if self.shard_of is None:
            return
        for entry in entries:
            queue = self._queues.get(entry.shard)
            if queue is not None:
                queue.remove(entry)
            self._resolved(entry.shard, queue, 1)

    def _resolved(
        self, shard: Hashable, queue: deque[Entry] | None, count: int, front: bool = False
    ) -> None:
        left = self._busy.get(shard, 0) - count
        if left > 0:
            self._busy[shard] = left
            return
        self._busy.pop(shard, None)
        if queue is None:
            return
        if not queue:
            del self._queues[shard]
        elif queue[0].state is QUEUED:
            if front:
                self._ready.appendleft(shard)
            else:
                self._ready.append(shard)

    def find(self, partition: TP, offset: int, part: object = None) -> Entry | None:
        """The queued, retry-waiting or (ordered modes) in-run entry of `partition` at
        `offset`, if the scheduler holds it; of assignment `part` only, when given (a
        shard may still hold an entry of an earlier one at the same offset). For operator
        actions: a scan, not a lookup."""
        if self.shard_of is None:
            waiting = (item[2] for item in self._retries if item[2].state is RETRY_WAIT)
            pool: Iterable[Entry] = itertools.chain(self._fifo, waiting)
        else:
            pool = (e for q in self._queues.values() if q[0].part.tp == partition for e in q)
        for entry in pool:
            if (
                entry.offset == offset
                and entry.part.tp == partition
                and (part is None or entry.part is part)
            ):
                return entry
        return None

    def claim(self, entry: Entry) -> bool:
        """Take a queued or retry-waiting entry out of turn, as a run of its own (an
        operator skips or parks it). In ordered modes only the head of a shard that is
        not busy: an older record of its shard goes first. False when it cannot be."""
        queued = entry.state is QUEUED
        if self.shard_of is None:
            if queued:
                try:
                    self._fifo.remove(entry)
                except ValueError:
                    return False
        else:
            queue = self._queues.get(entry.shard)
            if not queue or queue[0] is not entry or entry.shard in self._busy:
                return False
            self._busy[entry.shard] = 1
        if queued:
            self.queued -= 1
        self.in_flight += 1
        return True

    def shard_entries(self, shard: Hashable) -> Iterable[Entry]:
        """The entries of an ordered shard, oldest first (nothing for unordered)."""
        return self._queues.get(shard, ())

    def release_due(self, now: float) -> int:
        """Entries whose retry time has come may start again (the ledger marks them
        QUEUED through `on_due`). Returns how many."""
        retries, released = self._retries, 0
        while retries and retries[0][0] <= now:
            due, _, entry = heapq.heappop(retries)
            if entry.state is not RETRY_WAIT or entry.due != due:
                continue  # rolled back or dropped meanwhile
            entry.state = QUEUED
            released += 1
            self.queued += 1
            if self.shard_of is None:
                self._fifo.appendleft(entry)
                continue
            shard = entry.shard
            queue = self._queues.get(shard)
            if queue and queue[0] is entry and shard not in self._busy:
                self._ready.appendleft(shard)
        return released

    def next_retry_due(self) -> float | None:
        retries = self._retries
        while retries and (
            retries[0][2].state is not RETRY_WAIT or retries[0][2].due != retries[0][0]
        ):
            heapq.heappop(retries)  # stale
        return retries[0][0] if retries else None

    def behind_retries(self) -> dict[TP, int]:
        """Per partition, the entries held back because the head of their shard waits for
        a retry (ordered modes; in unordered mode a retry holds back nothing)."""
        behind: dict[TP, int] = {}
        if self.shard_of is None:
            return behind
        for due, _, entry in self._retries:
            if entry.state is not RETRY_WAIT or entry.due != due:
                continue  # stale
            queue = self._queues.get(entry.shard)
            if queue and len(queue) > 1:
                tp = entry.part.tp
                behind[tp] = behind.get(tp, 0) + len(queue) - 1
        return behind

    @property
    def waiting_retry(self) -> int:
        return sum(1 for due, _, e in self._retries if e.state is RETRY_WAIT and e.due == due)

    # -- throttling -----------------------------------------------------------
    def limit(self, partition: TP, max_offset: int | None) -> None:
        """Start no entry of `partition` above `max_offset` (None lifts the limit)."""
        if max_offset is None:
            self._limits.pop(partition, None)
        else:
            self._limits[partition] = max_offset
        if self._parked:
            self._ready.extendleft(reversed(self._parked))
            self._parked.clear()

    # -- rebalance ------------------------------------------------------------
    def drop_partitions(self, partitions: Iterable[TP]) -> list[Entry]:
        """Remove the entries of `partitions` that are not in a run (queued or waiting
        for a retry) and return them. Entries in runs stay until they resolve, and their
        shards stay busy, so a redelivered record of the same shard never overlaps them."""
        gone = set(partitions)
        if not gone:
            return []
        dropped: list[Entry] = []
        kept_retries = []
        for item in self._retries:
            entry = item[2]
            if entry.part.tp in gone:
                if entry.state is RETRY_WAIT and entry.due == item[0]:
                    dropped.append(entry)
            else:
                kept_retries.append(item)
        self._retries = kept_retries
        heapq.heapify(self._retries)
        if self.shard_of is None:
            kept: deque[Entry] = deque()
            for entry in self._fifo:
                if entry.part.tp in gone:
                    dropped.append(entry)
                    self.queued -= 1
                else:
                    kept.append(entry)
            self._fifo = kept
        else:
            for shard, queue in list(self._queues.items()):
                if queue[0].part.tp not in gone:
                    continue
                keep = deque(e for e in queue if e.state in IN_RUN)
                for entry in queue:
                    if entry.state is QUEUED:
                        dropped.append(entry)
                        self.queued -= 1
                if keep:
                    self._queues[shard] = keep
                else:
                    del self._queues[shard]
        for tp in gone:
            self._limits.pop(tp, None)
        return dropped

    def trim(self, partition: TP, cutoff: int) -> list[Entry]:
        """Remove queued entries of `partition` at or above `cutoff` (none of them may
        have started) and return them."""
        removed: list[Entry] = []

        def gone(entry: Entry) -> bool:
            return entry.state is QUEUED and entry.offset >= cutoff and entry.part.tp == partition

        if self.shard_of is None:
            kept: deque[Entry] = deque()
            for entry in self._fifo:
                (removed if gone(entry) else kept).append(entry)
            self._fifo = kept
        else:
            for shard, queue in list(self._queues.items()):
                while queue and gone(queue[-1]):
                    removed.append(queue.pop())
                if not queue and shard not in self._busy:
                    del self._queues[shard]
        self.queued -= len(removed)
        return removed


_NO_SHARD = object()


def _shard(entry: Entry) -> Hashable:
    return entry.shard
