"""Offset tracking for one partition: what may be committed, and what was done above it. Pure.

The committable offset is the lowest offset received but not finished ("contiguous
completion"); when everything received is finished it is the last received offset + 1.
Offsets finished above it are kept so they can be written into the commit metadata and
skipped by the next owner of the partition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class PartitionOffsets:
    """Tracks received and finished offsets of one partition.

    `committed` is where the group's committed offset stood when the partition was
    assigned (None if the group has none); `done_above` are offsets at or above it that
    the previous owner finished (read back from the commit metadata).
    """

    __slots__ = (
        "_dirty",
        "_done",
        "_next",
        "_pending",
        "_skip",
        "committed",
        "first_received",
        "max_started",
        "running",
    )

    def __init__(self, committed: int | None = None, done_above: Iterable[int] = ()) -> None:
        self.committed = committed
        self._pending: deque[int] = deque()  # received, in offset order, oldest first
        self._done: set[int] = set()  # finished offsets that are still in _pending
        self._skip = set(done_above)  # finished by a previous owner; skip on receipt
        self._next: int | None = None  # last received offset + 1
        self._dirty = False  # something finished since the last commit
        self.running = 0  # records in runs (running or awaiting acks); the ledger counts them
        self.max_started = -1  # highest offset ever handed to the executor
        self.first_received: int | None = None

    def receive(self, offset: int) -> bool:
        """Record that `offset` arrived. Returns False when it was already done (skip it)."""
        self._pending.append(offset)
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
            self._pending.extend(offsets)
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
        pending, done = self._pending, self._done
        for offset in offsets:
            if pending and pending[0] == offset:
                pending.popleft()
            elif pending and pending[0] < offset <= pending[-1]:
                done.add(offset)
        while pending and pending[0] in done:
            done.discard(pending.popleft())

    @property
    def position(self) -> int | None:
        """The offset to commit: lowest not finished, or last received + 1 (past the
        offsets a previous owner finished that come next). None if unknown."""
        if self._pending:
            return self._pending[0]
        position = self.next_offset
        skip = self._skip
        while position is not None and position in skip:
            position += 1
        return position

    def starts_with(self, offsets: list[int]) -> bool:
        """True when `offsets` (ascending) are the oldest unfinished offsets received."""
        done, wanted = self._done, iter(offsets)
        expected = next(wanted, None)
        for offset in self._pending:
            if expected is None:
                return True
            if offset in done:
                continue
            if offset != expected:
                return False
            expected = next(wanted, None)
        return expected is None

    def trim_from(self, keep: int) -> int | None:
        """Forget received records beyond the oldest `keep` unfinished ones, so they can
        be fetched again later. Only records never started can go: returns the offset to
        fetch from next (None when nothing could be trimmed)."""
        pending = self._pending
        if len(pending) - len(self._done) <= keep:
            return None
        unfinished = [o for o in pending if o not in self._done]
        cutoff = max(unfinished[keep], self.max_started + 1)
        if pending[-1] < cutoff:
            return None
        done = self._done
        while pending and pending[-1] >= cutoff:
            offset = pending.pop()
            if offset in done:
                # Finished already (a previous owner's): still done when it comes again,
                # and still in the metadata meanwhile.
                done.discard(offset)
                self._skip.add(offset)
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
        if not self._skip:
            return list(self._done)
        fetched = self.next_offset
        if fetched is not None:
            # Those below the next offset to fetch never arrived (compaction, transaction
            # markers) and never will: they no longer matter. The others still come, and
            # must still be skipped then.
            self._skip = {o for o in self._skip if o >= fetched}
        position = self.position
        return [*self._done, *(o for o in self._skip if position is None or o > position)]

    @property
    def done_above_count(self) -> int:
        return len(self._done)

    @property
    def pending_count(self) -> int:
        """Received offsets not yet finished."""
        return len(self._pending) - len(self._done)

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
