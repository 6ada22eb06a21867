"""Offset tracking for one partition: what may be committed, and what was done above it. Pure.

The committable offset is the lowest offset received but not finished ("contiguous
completion"); when everything received is finished it is the last received offset + 1.
Offsets finished above it are kept so they can be written into the commit metadata and
skipped by the next owner of the partition.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import compress, islice

# Drop the finished offsets before the first unfinished one once there are this many and
# they are at least half of the list: a memmove, paid for by the offsets it drops, and a
# partition holds at most as many finished offsets as unfinished ones (or this many).
COMPACT_AFTER = 64


def _within(offsets: list[int], low: int, high: int) -> bool:
    """Whether every offset lies in [low, high]. (Compiled, all() over a generator is a
    loop of integer comparisons; min() and max() of a list were two generic calls.)"""
    return all(low <= offset <= high for offset in offsets)


class PartitionOffsets:
    """Tracks received and finished offsets of one partition.

    `committed` is where the group's committed offset stood when the partition was
    assigned (None if the group has none); `done_above` are offsets at or above it that
    the previous owner finished (read back from the commit metadata).

    The received offsets are a list in offset order with a flag each (a bytearray, 1:
    finished) and the index of the oldest unfinished one: finishing an offset sets its
    flag (found by its distance from that index when no offsets are missing between, else
    by bisection), and the index moves on with `bytearray.find`, in C, past every offset
    finished meanwhile.
    """

    __slots__ = (
        "_dirty",
        "_finished",
        "_head",
        "_next",
        "_received",
        "_skip",
        "committed",
        "first_received",
        "max_started",
        "running",
    )

    def __init__(self, committed: int | None = None, done_above: Iterable[int] = ()) -> None:
        self.committed = committed
        self._received: list[int] = []  # received offsets in order (finished ones included)
        self._finished = bytearray()  # per received offset: 1 once finished
        self._head = 0  # index of the oldest unfinished received offset (len: none)
        self._skip = set(done_above)  # finished by a previous owner; skip on receipt
        self._next: int | None = None  # last received offset + 1
        self._dirty = False  # something finished since the last commit
        self.running = 0  # records in runs (running or awaiting acks); the ledger counts them
        self.max_started = -1  # highest offset ever handed to the executor
        self.first_received: int | None = None

    def receive(self, offset: int) -> bool:
        """Record that `offset` arrived. Returns False when it was already done (skip it)."""
        self._received.append(offset)
        self._finished.append(0)
        self._next = offset + 1
        if self.first_received is None:
            self.first_received = offset
        if self._skip and offset in self._skip:
            self._skip.discard(offset)
            self.finish(offset)
            return False
        return True

    def receive_many(self, offsets: list[int]) -> set[int]:
        """`receive` for offsets that arrived together, in order. Returns those already
        done (to skip), most often none."""
        if not offsets:
            return set()
        if not self._skip:  # the common case: nothing to skip
            self._received.extend(offsets)
            self._finished.extend(bytes(len(offsets)))
            self._next = offsets[-1] + 1
            if self.first_received is None:
                self.first_received = offsets[0]
            return set()
        return {offset for offset in offsets if not self.receive(offset)}

    def finish(self, offset: int) -> None:
        """Mark `offset` done; advances the committable offset when it is the oldest."""
        self.settle([offset])

    def started(self, count: int, highest: int) -> None:
        """`count` records up to offset `highest` were handed to the executor."""
        self.running += count
        if highest > self.max_started:
            self.max_started = highest

    def settle(self, offsets: list[int]) -> None:
        """Mark received `offsets` done (`finish` for each, in one pass). An offset that is
        not pending (below the position, or given back by `trim_from`) is ignored: only
        received, unfinished offsets can be finished."""
        self._dirty = True
        received, finished, head = self._received, self._finished, self._head
        size = len(received)
        if head >= size:
            return
        first, last = received[head], received[-1]
        start, count = head + offsets[0] - first if offsets else -1, len(offsets)
        if start >= head and received[start : start + count] == offsets:
            finished[start : start + count] = b"\x01" * count  # a run of received offsets
            offsets = []
        elif offsets and last - first == size - 1 - head and _within(offsets, first, last):
            # No offset missing from the oldest unfinished one on (the common case), and
            # all of them in that range: each flag is at its offset's distance from the
            # first (key order finishes scattered offsets: 0.13 -> 0.09 us an offset).
            base = first - head
            for offset in offsets:
                finished[offset - base] = 1
            offsets = []
        for offset in offsets:
            if offset < first or offset > last:
                continue  # finished already, or not received
            index = head + offset - first  # where it is when no offset is missing before it
            if index >= size or received[index] != offset:
                index = bisect_left(received, offset, head)
                if received[index] != offset:
                    continue  # never received (compacted away, a transaction marker)
            finished[index] = 1
        if finished[head]:
            head = finished.find(0, head)
            self._head = head = size if head < 0 else head
            if head >= COMPACT_AFTER and 2 * head >= size:
                del received[:head]
                del finished[:head]
                self._head = 0

    @property
    def position(self) -> int | None:
        """The offset to commit: lowest not finished, or last received + 1 (past the
        offsets a previous owner finished that come next). None if unknown."""
        if self._head < len(self._received):
            return self._received[self._head]
        position = self.next_offset
        skip = self._skip
        while position is not None and position in skip:
            position += 1
        return position

    def starts_with(self, offsets: list[int]) -> bool:
        """True when `offsets` (ascending) are the oldest unfinished offsets received."""
        received, finished, index = self._received, self._finished, self._head
        for offset in offsets:
            index = finished.find(0, index)
            if index < 0 or received[index] != offset:
                return False
            index += 1
        return True

    def trim_from(self, keep: int) -> int | None:
        """Forget received records beyond the oldest `keep` unfinished ones, so they can
        be fetched again later. Only records never started can go: returns the offset to
        fetch from next (None when nothing could be trimmed)."""
        if self.pending_count <= keep:
            return None
        received, finished, head = self._received, self._finished, self._head
        unfinished = [
            o for o, done in zip(received[head:], finished[head:], strict=True) if not done
        ]
        cutoff = max(unfinished[keep], self.max_started + 1)
        if received[-1] < cutoff:
            return None
        cut = bisect_left(received, cutoff, head)
        # Finished already (a previous owner's): still done when it comes again, and still
        # in the metadata meanwhile.
        self._skip.update(compress(received[cut:], finished[cut:]))
        del received[cut:]
        del finished[cut:]
        self._head = min(head, cut)
        self._next = cutoff
        return cutoff

    @property
    def next_offset(self) -> int | None:
        """The offset the next record to arrive should have (None before any is known)."""
        return self._next if self._next is not None else self.committed

    @property
    def done_above(self) -> list[int]:
        """Offsets finished above `position` (unordered), including those a previous owner
        finished that have not arrived again yet: they must survive the next commit too."""
        head = self._head
        done = list(compress(islice(self._received, head, None), self._finished[head:]))
        if not self._skip:
            return done
        fetched = self.next_offset
        if fetched is not None:
            # Those below the next offset to fetch never arrived (compaction, transaction
            # markers) and never will: they no longer matter. The others still come, and
            # must still be skipped then.
            self._skip = {o for o in self._skip if o >= fetched}
        position = self.position
        return [*done, *(o for o in self._skip if position is None or o > position)]

    @property
    def done_above_count(self) -> int:
        return self._finished.count(1, self._head)

    @property
    def pending_count(self) -> int:
        """Received offsets not yet finished."""
        return self._finished.count(0, self._head)

    def needs_commit(self) -> bool:
        """True when the position or the finished-above set changed since the last commit."""
        return self._dirty and self.position is not None

    def mark_committed(self, offset: int) -> None:
        """The position `offset` (and the set above it) was handed to a commit."""
        self._dirty = False
        self.committed = offset if self.committed is None else max(self.committed, offset)

    def mark_dirty(self) -> None:
        """A commit did not go through: commit the current state again next time."""
        self._dirty = True
