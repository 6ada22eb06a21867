"""Poison isolation for batch handlers: split a failing batch until the bad records are
found. Pure; the sync and async chunk runners drive it.

A failed batch of n records is split in halves, first half first, and each half is run
again as a batch; a failing single record is isolated. Records of a shard (key or
partition) that has an isolated failure are not run after it: they go back to the
scheduler and wait behind the failed record, so order per shard holds. Records of other
shards in the batch succeed once. Outputs of a successful sub-batch belong to all its
records: each gets the same output list, and the control thread settles them together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence

from parafka.core.outcomes import NOT_RUN, Outcome
from parafka.core.record import Produced, Record


class BatchRun:
    """The state of one batch as it is split: which records to run next, and the outcome
    of each record so far."""

    def __init__(
        self, records: Sequence[Record], shard_of: Callable[[Record], Hashable] | None
    ) -> None:
        self.records = records
        self._shard_of = shard_of
        self._outcomes: list[Outcome | None] = [None] * len(records)
        self._failed_shards: set[Hashable] = set()
        self._pending: deque[list[int]] = deque()
        self._current: list[int] = []
        self._any_outcome = False
        self.calls = 0  # handler calls so far

    def start(self, skip: dict[int, BaseException] | None = None) -> None:
        """Begin with the whole batch minus the records in `skip` (index -> error, for
        values that failed before the handler)."""
        if not skip:
            self._pending.append(list(range(len(self.records))))
            return
        for index, error in sorted(skip.items()):
            self._fail(index, error)
        self._pending.append([i for i in range(len(self.records)) if i not in skip])

    def next_batch(self) -> list[Record] | None:
        """The records to pass to the handler next, or None when the batch is settled."""
        records = self.records
        while self._pending:
            members = self._pending.popleft()
            if not self._failed_shards:  # nothing held back (always, on a first call)
                runnable = members
            else:
                runnable = []
                for index in members:
                    if self._shard_failed(index):
                        self._set(index, NOT_RUN)
                    else:
                        runnable.append(index)
            if runnable:
                self._current = runnable
                self.calls += 1
                if len(runnable) == len(records):
                    return list(records)  # a copy: the handler may reorder its list
                return [records[i] for i in runnable]
        return None

    def succeeded(self, outputs: list[Produced] | None) -> None:
        """The last batch given out succeeded, with these outputs (None: no output)."""
        if outputs:
            shared: Outcome = (outputs, None)
            current, outcomes = self._current, self._outcomes
            if len(current) == len(outcomes):
                self._outcomes = [shared] * len(outcomes)
            else:
                for index in current:
                    outcomes[index] = shared
            self._any_outcome = True

    def failed(self, error: BaseException) -> None:
        """The last batch given out failed: split it, or isolate its single record."""
        members = self._current
        if len(members) == 1:
            self._fail(members[0], error)
            return
        middle = len(members) // 2
        self._pending.appendleft(members[middle:])
        self._pending.appendleft(members[:middle])

    def outcomes(self) -> list[Outcome | None] | None:
        """Per record: None (done, no output), NOT_RUN, or an Outcome; None when every
        record is done without output."""
        return self._outcomes if self._any_outcome else None

    def _fail(self, index: int, error: BaseException) -> None:
        self._set(index, (None, error))
        if self._shard_of is not None:
            self._failed_shards.add(self._shard_of(self.records[index]))

    def _shard_failed(self, index: int) -> bool:
        return self._shard_of is not None and (
            self._shard_of(self.records[index]) in self._failed_shards
        )

    def _set(self, index: int, outcome: Outcome) -> None:
        self._outcomes[index] = outcome
        self._any_outcome = True
