"""Executors run the user's handler away from the control thread and report outcomes.

The control thread calls `submit()` with records the scheduler released; the executor
runs the handler and puts one `Completion` per record into the shared `Completions`
queue. Process and asyncio executors implement the same interface (issue: executors);
the scheduler and the offset logic never see which one runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from parafka.record import Produced, Record, normalize_outputs

log = logging.getLogger("parafka.executor")

Handler = Callable[[Record], Any]


# What became of a record that did not simply succeed: its outputs, or its exception.
Outcome = tuple[list[Produced] | None, BaseException | None]
# A record that was handed over but not executed, because an earlier record of its chunk
# failed (a later record of the same key must not overtake the failed one).
NOT_RUN: Outcome = (None, None)


class ChunkResult(NamedTuple):
    """The outcome of a chunk of records. `outcomes` is None when every handler returned
    nothing (the common case, kept cheap); otherwise it holds one entry per record: None
    for "done, no output", NOT_RUN, or an Outcome."""

    records: list[Record]
    outcomes: list[Outcome | None] | None


def run_chunk(handler: Handler, records: list[Record], default_topic: str | None) -> ChunkResult:
    """Call the handler on each record in order; stop at the first failure."""
    outcomes: list[Outcome | None] | None = None
    for index, record in enumerate(records):
        try:
            result = handler(record)
            if result is None:
                continue
            outcome: Outcome = (normalize_outputs(result, default_topic), None)
        except Exception as exc:
            outcome = (None, exc)
        if outcomes is None:
            outcomes = [None] * len(records)
        outcomes[index] = outcome
        if outcome[1] is not None:
            outcomes[index + 1 :] = [NOT_RUN] * (len(records) - index - 1)
            break
    return ChunkResult(records, outcomes)


class Completions:
    """A many-writers, one-reader queue of chunk results that can wake the control thread."""

    def __init__(self) -> None:
        self._items: deque[ChunkResult] = deque()
        self._wake = threading.Event()

    def put(self, result: ChunkResult) -> None:
        self._items.append(result)
        if not self._wake.is_set():
            self._wake.set()

    def wake(self) -> None:
        """Wake the control thread without a completion (for example to stop)."""
        self._wake.set()

    def wait(self, timeout: float) -> None:
        """Block until a completion arrives or `timeout` seconds pass."""
        if not self._items and timeout > 0:
            self._wake.wait(timeout)
        self._wake.clear()

    def drain(self) -> list[ChunkResult]:
        """Every chunk result put so far, oldest first."""
        items = self._items
        return [items.popleft() for _ in range(len(items))]

    def __len__(self) -> int:
        return len(self._items)


class Executor(ABC):
    """Runs handlers; reports every submitted record exactly once to `completions`,
    in chunk results."""

    @abstractmethod
    def start(self, handler: Handler, completions: Completions, default_topic: str | None) -> None:
        """Get ready to run `handler`; outcomes go to `completions`."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many records the executor wants in hand at once (the dispatch window)."""

    @property
    @abstractmethod
    def run_length(self) -> int:
        """How many consecutive records of one shard are worth running as one unit."""

    @abstractmethod
    def submit(self, runs: list[list[Record]]) -> None:
        """Run the handler on each record; the records of a run in order, on one worker
        (called from the control thread only)."""

    @abstractmethod
    def shutdown(self, timeout: float) -> bool:
        """Stop accepting work and wait up to `timeout` for running handlers.

        Returns False when some handler was still running at the deadline (it is
        abandoned; its record is not committed).
        """


class ThreadExecutor(Executor):
    """A fixed pool of worker threads, for handlers that wait on I/O.

    Records go to the workers in chunks sized from the measured handler time: a
    handler that takes milliseconds gets one record per hand-over (all threads busy),
    one that takes microseconds gets dozens (the hand-over cost is paid per chunk).
    """

    CHUNK_SECONDS = 0.002  # aim for chunks that take about this long to run
    MAX_CHUNK = 256

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._queue: queue.SimpleQueue[list[Record] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._mean_seconds = 0.01  # handler time estimate, refined as chunks complete

    @property
    def chunk_size(self) -> int:
        return max(1, min(self.MAX_CHUNK, int(self.CHUNK_SECONDS / max(self._mean_seconds, 1e-9))))

    @property
    def run_length(self) -> int:
        return self.chunk_size

    @property
    def capacity(self) -> int:
        """Records worth handing over at once: a chunk per worker, plus one chunk each
        waiting so that a worker never idles while the control thread catches up."""
        chunk = self.chunk_size
        return self.workers * (chunk if chunk == 1 else 2 * chunk)

    def start(self, handler: Handler, completions: Completions, default_topic: str | None) -> None:
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work,
                args=(handler, completions, default_topic),
                name=f"parafka-worker-{number}",
                daemon=True,  # a handler stuck forever must not keep the process alive
            )
            thread.start()
            self._threads.append(thread)

    def _work(self, handler: Handler, completions: Completions, topic: str | None) -> None:
        get, put, clock = self._queue.get, completions.put, time.perf_counter
        while (chunk := get()) is not None:
            started = clock()
            result = run_chunk(handler, chunk, topic)
            per_record = (clock() - started) / len(chunk)
            self._mean_seconds += 0.2 * (per_record - self._mean_seconds)
            put(result)

    def submit(self, runs: list[list[Record]]) -> None:
        put = self._queue.put
        if self.chunk_size == 1 and all(len(run) == 1 for run in runs):
            for run in runs:
                put(run)
            return
        # Pack whole runs into chunks, spreading the work over the workers.
        total = sum(len(run) for run in runs)
        size = min(self.chunk_size, -(-total // self.workers))
        chunk: list[Record] = []
        for run in runs:
            chunk.extend(run)
            if len(chunk) >= size:
                put(chunk)
                chunk = []
        if chunk:
            put(chunk)

    def shutdown(self, timeout: float) -> bool:
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        if alive:
            log.warning("%d handler thread(s) still running at shutdown; abandoned", len(alive))
        return not alive
