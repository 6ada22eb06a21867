"""The simulator's executor and completion queue: handlers run when the schedule says so.

`SimExecutor` keeps submitted runs as pending chunks; the world picks which chunk runs
next (any order, as N real workers would finish them), can hold one back as hung, and can
let its handler kill the "worker". A death is reported through `died_outcomes`, the very
function the process executor uses, so only the record that was running is charged.
`SimCompletions.wait()` never blocks: it lets the world move on (run work of that
consumer, advance the virtual clock) instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from parafka.core.entry import Entry
from parafka.core.outcomes import as_one_each
from parafka.core.record import Record
from parafka.executors.base import ChunkResult, Completions, Executor, Work, run_chunk
from parafka.executors.handover import HandedOver
from parafka.executors.processes import WorkerDied, died_outcomes


class KillWorker(BaseException):
    """Raised by a simulated handler: its worker dies while running this record."""


@dataclass
class Chunk:
    """A run handed to the executor and not reported yet."""

    number: int
    entries: list[Entry]
    hung_until: float | None = None  # held back until then (a hung handler)


class SimCompletions(Completions):
    """A completion queue whose wait lets the simulated world progress instead of
    blocking: `on_wait(timeout)` runs some of the consumer's work and moves the clock."""

    def __init__(self, on_wait: Callable[[float], None]) -> None:
        super().__init__()
        self._on_wait = on_wait

    def wait(self, timeout: float) -> None:
        if not self._items:
            self._on_wait(timeout)
        self._wake.clear()


class SimExecutor(Executor):
    """Runs the handler inline, one chunk at a time, in the order the world chooses."""

    def __init__(
        self,
        capacity: int,
        run_length: int,
        on_submit: Callable[[list[Entry]], float | None] | None = None,
    ) -> None:
        self._capacity = capacity
        self._run_length = run_length
        self._on_submit = on_submit
        self._numbers = itertools.count()
        self.pending: list[Chunk] = []
        self._work: Work | None = None
        self._completions: Completions | None = None
        # --handover: drawn after a hand-over is queued; True plays a stand-by thread
        # taking the loop over (executors/handover.py): `submit` raises HandedOver, as
        # the old control thread does once its handler returns, and the loop goes on.
        self.hand_over: Callable[[], bool] | None = None
        # Whether to say the handlers run on the control thread (`runs_here`): the loop's
        # fair share then goes by the loop's waits instead of free slots.
        self.here = False
        self._hung = False  # a run of it hung

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def run_length(self) -> int:
        return self._run_length

    @property
    def runs_here(self) -> bool:
        # A hang ends handlers on the control thread for good (threads.py: the stand-by
        # takes the loop over, worker threads run them from then on).
        return self.here and not self._hung

    def start(self, work: Work, completions: Completions) -> None:
        self._work, self._completions = work, completions

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        # The simulator runs the consumer-group engine, whose records are its entries.
        for run in cast("Sequence[list[Entry]]", runs):
            # The hook checks the run, and may say it hangs until some time.
            hung = self._on_submit(run) if self._on_submit is not None else None
            self._hung = self._hung or hung is not None
            self.pending.append(Chunk(next(self._numbers), run, hung))
        if self.hand_over is not None and self.hand_over():
            raise HandedOver

    def runnable(self, now: float) -> list[int]:
        """Indexes of the pending chunks that may run now (not hung)."""
        return [
            i for i, c in enumerate(self.pending) if c.hung_until is None or c.hung_until <= now
        ]

    def run(self, index: int) -> None:
        """Run pending chunk `index` and report it."""
        assert self._work is not None and self._completions is not None
        chunk = self.pending.pop(index)
        records = [entry.record for entry in chunk.entries]
        handler = self._work.handler
        assert callable(handler)
        calls = 0

        def counted(record: Record) -> Any:
            nonlocal calls
            calls += 1
            return handler(record)

        try:
            outcomes = run_chunk(counted, records, self._work).outcomes
        except KillWorker:
            died = WorkerDied(f"simulated worker exited while running chunk {chunk.number}")
            # A batch handler is one call for the chunk (the process executor reports 0
            # calls for it): its death charges every record of the chunk.
            calls = 0 if self._work.batch_size is not None else calls
            outcomes = died_outcomes(len(records), chunk.number, (chunk.number, calls), died)
        if chunk.number % 2 == 0 and (each := as_one_each(outcomes)) is not None:
            # as the thread executor reports a chunk that returned one output a record
            self._completions.put(ChunkResult(chunk.entries, each))
            return
        self._completions.put(ChunkResult(chunk.entries, outcomes))

    def shutdown(self, timeout: float) -> bool:
        """Chunks not run are abandoned (unreported), like a worker stopped mid-way."""
        self.pending.clear()
        return True
