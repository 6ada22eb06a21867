"""The ordering scheduler: decides which received records may start now. Pure.

One abstraction covers the three ordering modes (STYLE.md): every record maps to a
shard, and a shard's records run in offset order, never two runs of it side by side.

- ``partition``: the shard is the partition (its one shard key is `WHOLE_PARTITION`);
- ``key``: the shard is (partition, key);
- ``unordered``: every record is its own shard (kept in one FIFO, since such shards
  never wait for each other).

An entry's `shard` is its shard's key *within its partition* (the record's key, or
`WHOLE_PARTITION`): each partition has a dictionary of its shards, shared by all its
assignments (`Part.shards`), so a redelivered record waits behind the run of an earlier
assignment of its key. No tuple is made or hashed per record.

`take()` hands out *runs*: up to `run_length` consecutive entries of one shard, to be
executed in order by one worker. With slow handlers the run length is 1; with handlers
that take microseconds, runs let a partition or key move many records per hand-over.

The scheduler works on `Entry` objects whose state the ledger sets (the scheduler marks a
lone entry RUNNING when it hands it out, and an entry QUEUED when its retry is due); it
only keeps the queues. An ordered shard is *busy* from `take()` until every entry of its run is
resolved: done and popped from the head of its queue (`finished`), waiting for a retry
(`retry`), or put back (`unrun`). It is *ready* when it is not busy and its head entry is
queued (not waiting for its retry). Entries leave a shard's queue only from its head, in
offset order: that is what makes "done" in the offsets follow the shard's order.

A shard is held in one of two forms (with many keys and no backlog, most keys have one
record waiting):

- the entry itself, when the shard holds one entry: busy exactly while that entry is in
  its run (its state is in `IN_RUN`), so it needs no count and no queue;
- a `_Queue` (a deque with a `busy` count: the entries of its run not resolved) once a
  second entry arrives; it stays a queue until it empties.

`_ready` holds the head entries of shards that may start; it may hold stale ones (no
longer a head, not QUEUED, or their shard busy), which `take()` skips.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TYPE_CHECKING, Final, Literal

from mypy_extensions import mypyc_attr

from parafka.core.entry import DONE, HELD, IN_RUN, QUEUED, RETRY_WAIT, RUNNING, Entry
from parafka.core.record import Record
from parafka.core.seam import TP

if TYPE_CHECKING:
    from parafka.core.ledger import Part

Ordering = Literal["partition", "key", "unordered"]
ORDERINGS: tuple[Ordering, ...] = ("key", "partition", "unordered")
Run = list[Entry]

WHOLE_PARTITION: Final = "partition"  # the shard key of every entry in partition mode
# A finished run longer than this leaves its queue in one step (`Scheduler.finished`); a
# shorter one entry by entry, which costs less than the calls (engine_path.py --ahead).
RUN_IN_C: Final = 4


def _partition_shard(record: Record) -> Hashable:
    return (record.topic, record.partition)


def _key_shard(record: Record) -> Hashable:
    return (record.topic, record.partition, record.key)


# A record's shard across partitions (the executors group records of a chunk by it).
SHARD_FUNCTIONS: dict[str, Callable[[Record], Hashable] | None] = {
    "partition": _partition_shard,
    "key": _key_shard,
    "unordered": None,  # each record is its own shard
}


def _whole_partition(record: Record) -> Hashable:
    return WHOLE_PARTITION


def _record_key(record: Record) -> Hashable:
    return record.key


# A record's shard key within its partition: what `Entry.shard` holds (the ledger writes
# these out when it makes entries).
SHARD_KEYS: dict[str, Callable[[Record], Hashable] | None] = {
    "partition": _whole_partition,
    "key": _record_key,
    "unordered": None,
}


@mypyc_attr(native_class=False)  # compiled (build.py), a deque subclass stays a Python class
class _Queue(deque[Entry]):
    """A shard that held two entries or more: its entries, oldest first, and `busy`, the
    entries of its run not resolved (a prefix of the queue). Made by `_queue`."""

    __slots__ = ("busy",)
    busy: int


def _queue(entries: Iterable[Entry], busy: int) -> _Queue:
    # deque's own constructor, then the count: with a backlog a queue is made per key per
    # fetch, and a Python __init__ calling deque's showed in the end-to-end profile (2.5%)
    queue = _Queue(entries)
    queue.busy = busy
    return queue


Held = Entry | _Queue  # a shard: its one entry, or its queue
Shards = dict[Hashable, Held]  # a partition's shards, by shard key


def _members(held: Held) -> Iterable[Entry]:
    return held if isinstance(held, _Queue) else (held,)


@mypyc_attr(allow_interpreted_subclasses=True)  # a test's scheduler subclasses it
class Scheduler:
    """Queues entries per shard and hands out runs that may start now.

    Invariants (ordered modes): a shard is in its partition's `Shards` while it holds an
    entry; a busy queue's run is a prefix of it, counted in its `busy`; a lone entry's
    shard is busy while the entry is in its run; a ready shard is not busy, its head is
    QUEUED and in `_ready`; ``in_flight`` is the number of entries handed out and not
    resolved.
    """

    def __init__(self, ordering: Ordering, concurrency: int, run_length: int = 1) -> None:
        if ordering not in SHARD_FUNCTIONS:
            raise ValueError(f"unknown ordering {ordering!r}")
        self.ordering = ordering
        self.concurrency = concurrency  # entries in flight at most
        self.run_length = run_length  # consecutive entries of one shard per run at most
        self.shard_of = SHARD_FUNCTIONS[ordering]
        self._partitions: dict[TP, Shards] = {}  # partition -> its shards
        self._ready: deque[Entry] = deque()  # heads of shards that may start (and stale ones)
        self._fifo: deque[Entry] = deque()  # unordered mode: entries that may start
        self._retries: list[tuple[float, int, Entry]] = []  # (due, tie-breaker, entry)
        self._seq = itertools.count()
        self._limits: dict[TP, int] = {}  # partition -> highest offset to start
        self._parked: list[Entry] = []  # heads of shards held back by a limit
        self.in_flight = 0
        self.queued = 0  # entries that may start (QUEUED), excluding retry waits

    def _shards(self, part: Part) -> Shards:
        """The shards of `part`'s partition (shared by all its assignments)."""
        shards = part.shards
        if shards is None:
            shards = part.shards = self._partitions.setdefault(part.tp, {})
        return shards

    # -- intake ---------------------------------------------------------------
    def add_many(self, entries: list[Entry]) -> None:
        """Queue newly received entries (those of a partition arrive in offset order;
        the ledger has set their shard keys)."""
        self.queued += len(entries)
        if self.shard_of is None:
            self._fifo.extend(entries)
            return
        ready = self._ready
        part: Part | None = None
        shards: Shards = {}
        for entry in entries:
            if entry.part is not part:
                part = entry.part
                shards = self._shards(part)
            key = entry.shard
            held = shards.get(key)
            if held is None:  # the common case in key mode: a shard of one entry
                shards[key] = entry
                ready.append(entry)
            elif type(held) is _Queue:
                held.append(entry)
            else:  # a second entry: the shard becomes a queue (busy if its first runs)
                first: Entry = held  # type: ignore[assignment]  # (no cast(): a call)
                shards[key] = _queue((first, entry), 1 if first.state in IN_RUN else 0)

    # -- dispatch -------------------------------------------------------------
    def take(self, limit: int | None = None) -> list[Run]:
        """Runs that may start now (at most the free slots); the caller marks them
        RUNNING (a shard's lone entry is marked here: that is its shard's busy mark).
        Each run holds consecutive entries of one shard, in offset order."""
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
        ready, parked = self._ready, self._parked
        size, limits, runs, taken = max(1, self.run_length), self._limits, [], 0
        while ready and taken < free:
            head = ready.popleft()
            if head.state is not QUEUED:
                continue  # stale: running, waiting for a retry, or gone
            shards: Shards = head.part.shards  # type: ignore[assignment]  # set: it is queued
            held = shards.get(head.shard)  # (compiled: a dict's get, not a method call)
            if held is head:  # a shard of one entry
                if limits and self._over_limit(head):
                    parked.append(head)
                    continue
                head.state = RUNNING  # its shard's busy mark (the ledger marks the others)
                runs.append([head])
                taken += 1
                continue
            if type(held) is not _Queue or held.busy or held[0] is not head:
                continue  # stale: not its shard's head any more, or its shard is busy
            queue: _Queue = held
            count = len(queue)
            run = [head]
            if count > 1:  # a run stops before an entry waiting for its retry
                # (compiled: plain comparisons and a loop, not min() and islice)
                if count > size:
                    count = size
                if count > free - taken:
                    count = free - taken
                for i in range(1, count):
                    entry = queue[i]
                    if entry.state is not QUEUED:
                        count = i
                        break
                    run.append(entry)
            if limits:
                count = self._within_limit(queue, count)
                if count == 0:
                    parked.append(head)
                    continue
                del run[count:]
            queue.busy = count
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
        self._leave(entries, left)
        self.in_flight -= len(left)
        return left

    def _leave(self, entries: Iterable[Entry], left: list[Entry], whole_runs: bool = True) -> None:
        """`finished` for `entries`, appending those that leave to `left`; `whole_runs`:
        a long run reported whole may leave in one step."""
        last_part, last_key = None, None  # the queue passed last: runs come back whole
        reported = iter(entries)
        for entry in reported:
            key = entry.shard
            if entry.part is last_part and key == last_key:
                continue  # one pass per queue
            shards = entry.part.shards
            assert shards is not None
            held = shards.get(key)
            if held is entry:  # the common case in key mode: a lone entry leaves
                del shards[key]
                left.append(entry)
                continue
            if type(held) is not _Queue:
                continue
            last_part, last_key = entry.part, key
            queue: _Queue = held
            popped = 0
            rest: list[Entry] = []
            if whole_runs and (busy := queue.busy) > RUN_IN_C and queue[0] is entry:
                # With a backlog, runs are long and come back whole, in order: the next
                # entries reported are the rest of this run (compared by identity, in C,
                # none of their attributes read), and they leave in one step. Otherwise
                # those entries are looked at one by one below.
                run = list(itertools.islice(queue, busy))
                rest = list(itertools.islice(reported, busy - 1))
                if rest == run[1:]:
                    if busy == len(queue):
                        queue.clear()
                    else:
                        popleft = queue.popleft
                        for _ in range(busy):
                            popleft()
                    left.extend(run)
                    popped, rest = busy, []
            while queue and ((state := queue[0].state) is DONE or state is HELD):
                left.append(queue.popleft())
                popped += 1
            if popped:
                self._resolved(shards, key, queue, popped)
            if rest:  # not this run's rest (another queue's entries among them): one by
                self._leave(rest, left, whole_runs=False)  # one (no deeper recursion)

    def retry(self, entry: Entry) -> None:
        """A run's entry failed and waits (state RETRY_WAIT, `entry.due` set); its shard
        waits for it."""
        heapq.heappush(self._retries, (entry.due, next(self._seq), entry))
        self.in_flight -= 1
        if self.shard_of is not None:
            self._resolved_one(entry)

    def hold_back(self, entry: Entry) -> None:
        """A run's entry failed for good and stays unfinished (state STOPPED): it keeps
        its place at the head of its shard, so nothing after it ever counts as done."""
        self.in_flight -= 1
        if self.shard_of is not None:
            self._resolved_one(entry)

    def unrun(self, entries: list[Entry]) -> None:
        """Entries of runs that must start again (state set back to QUEUED): not run after
        an earlier failure, or rolled back because an earlier entry of their shard
        failed. They keep their place, ahead of newer entries."""
        self.in_flight -= len(entries)
        self.queued += len(entries)
        if self.shard_of is None:
            self._fifo.extendleft(reversed(entries))
            return
        last: Held | None = None
        count = 0
        for entry in entries:  # consecutive entries of one shard resolve together
            held = self._held(entry)
            if held is not last:
                self._put_back(last, count)
                last, count = held, 0
            count += 1
        self._put_back(last, count)

    def _put_back(self, held: Held | None, count: int) -> None:
        """`count` entries of shard `held` went back to QUEUED, at their places."""
        if held is None:
            return
        if type(held) is _Queue:
            queue: _Queue = held
            head = queue[0]
            self._resolved(self._shards(head.part), head.shard, queue, count, front=True)
        elif held.state is QUEUED:  # type: ignore[union-attr]
            self._ready.appendleft(held)  # type: ignore[arg-type]

    def discard(self, entries: list[Entry]) -> None:
        """Entries of runs that are given up without finishing (their partition was
        revoked): they leave their shards wherever they are."""
        self.in_flight -= len(entries)
        if self.shard_of is None:
            return
        for entry in entries:
            shards = self._shards(entry.part)
            key = entry.shard
            held = shards.get(key)
            if held is entry:
                del shards[key]
            elif type(held) is _Queue:
                queue: _Queue = held
                queue.remove(entry)
                self._resolved(shards, key, queue, 1)

    def _held(self, entry: Entry) -> Held | None:
        """The shard of `entry` (its queue, or the entry alone), if it still holds it."""
        held = self._shards(entry.part).get(entry.shard)
        return held if held is entry or type(held) is _Queue else None

    def _resolved_one(self, entry: Entry) -> None:
        """One entry of a run resolved without leaving its shard (retry, hold back)."""
        shards = self._shards(entry.part)
        held = shards.get(entry.shard)
        if type(held) is _Queue:
            self._resolved(shards, entry.shard, held, 1)
        # a lone entry waiting for its retry, or held back: its shard is not busy, and
        # not ready either

    def _resolved(
        self, shards: Shards, key: Hashable, queue: _Queue, count: int, front: bool = False
    ) -> None:
        left = queue.busy - count
        if left > 0:
            queue.busy = left
            return
        queue.busy = 0
        if not queue:
            if shards.get(key) is queue:
                del shards[key]
        elif queue[0].state is QUEUED:
            if front:
                self._ready.appendleft(queue[0])
            else:
                self._ready.append(queue[0])

    def find(self, partition: TP, offset: int, part: object = None) -> Entry | None:
        """The queued, retry-waiting or (ordered modes) in-run entry of `partition` at
        `offset`, if the scheduler holds it; of assignment `part` only, when given (a
        shard may still hold an entry of an earlier one at the same offset). For operator
        actions: a scan, not a lookup."""
        if self.shard_of is None:
            waiting = (item[2] for item in self._retries if item[2].state is RETRY_WAIT)
            pool: Iterable[Entry] = itertools.chain(self._fifo, waiting)
        else:
            pool = self._entries_of(partition)
        for entry in pool:
            if (
                entry.offset == offset
                and entry.part.tp == partition
                and (part is None or entry.part is part)
            ):
                return entry
        return None

    def _entries_of(self, partition: TP) -> Iterator[Entry]:
        for held in self._partitions.get(partition, {}).values():
            yield from _members(held)

    def claim(self, entry: Entry) -> bool:
        """Take a queued or retry-waiting entry out of turn, as a run of its own (an
        operator skips or parks it; the ledger marks it RUNNING). In ordered modes only
        the head of a shard that is not busy: an older record of its shard goes first.
        False when it cannot be."""
        queued = entry.state is QUEUED
        if self.shard_of is None:
            if queued:
                try:
                    self._fifo.remove(entry)
                except ValueError:
                    return False
        else:
            held = self._shards(entry.part).get(entry.shard)
            if held is entry:
                pass  # a lone entry, queued or waiting: its shard is not busy
            elif type(held) is _Queue and held and held[0] is entry and not held.busy:
                held.busy = 1
            else:
                return False
        if queued:
            self.queued -= 1
        self.in_flight += 1
        return True

    def shard_entries(self, entry: Entry) -> Iterable[Entry]:
        """The entries of `entry`'s shard, oldest first (nothing for unordered, or when
        the shard holds nothing any more)."""
        if self.shard_of is None:
            return ()
        held = self._shards(entry.part).get(entry.shard)
        return () if held is None else _members(held)

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
            held = self._shards(entry.part).get(entry.shard)
            if held is entry or (type(held) is _Queue and held[0] is entry and not held.busy):
                self._ready.appendleft(entry)
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
            held = self._shards(entry.part).get(entry.shard)
            if type(held) is _Queue and len(held) > 1:
                tp = entry.part.tp
                behind[tp] = behind.get(tp, 0) + len(held) - 1
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
            for tp in gone:
                shards = self._partitions.get(tp)
                if not shards:
                    continue
                for key, held in list(shards.items()):
                    members = list(_members(held))
                    for entry in members:
                        if entry.state is QUEUED:
                            dropped.append(entry)
                            self.queued -= 1
                    keep = [e for e in members if e.state in IN_RUN]
                    if not keep:
                        del shards[key]
                    elif type(held) is _Queue and len(keep) < len(members):
                        shards[key] = _queue(keep, held.busy)
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
            shards = self._partitions.get(partition, {})
            for key, held in list(shards.items()):
                if not isinstance(held, _Queue):
                    if gone(held):
                        removed.append(held)
                        del shards[key]
                    continue
                queue: _Queue = held
                while queue and gone(queue[-1]):
                    removed.append(queue.pop())
                if not queue and not queue.busy:
                    del shards[key]
        self.queued -= len(removed)
        return removed
