"""The thread executor: a fixed pool of worker threads, for handlers that wait on I/O."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence

from parafka.core.record import Record
from parafka.executors.base import (
    ChunkResult,
    Completions,
    Executor,
    Handler,
    Work,
    fail_first,
    pack_runs,
    run_chunk,
)
from parafka.executors.chunks import HANG_AFTER, RESCUE_EVERY, Chunk, pack_units, run_units

log = logging.getLogger(__name__)


def _unset(_record: object) -> None:
    raise RuntimeError("ThreadExecutor: start() first")


class ThreadExecutor(Executor):
    """Worker threads running the handler.

    Records go to the workers in chunks sized from the measured handler time: a
    handler that takes milliseconds gets one record per hand-over (all threads busy),
    one that takes microseconds gets dozens (the hand-over cost is paid per chunk).
    With a batch handler a chunk is one batch.
    """

    CHUNK_SECONDS = 0.002  # aim for chunks that take about this long to run
    MAX_CHUNK = 256

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._queue: queue.SimpleQueue[Chunk | Sequence[Record] | None] = queue.SimpleQueue()
        self._running: dict[int, Chunk] = {}  # worker thread -> the chunk it runs
        self._rescue_at = 0.0
        self._completions: Completions | None = None
        self._unordered = False
        self._threads: list[threading.Thread] = []
        self._mean_seconds = 0.01  # handler time per record, refined as chunks complete
        self._batch_size: int | None = None
        self._handler: Handler = _unset

    @property
    def chunk_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        return max(1, min(self.MAX_CHUNK, int(self.CHUNK_SECONDS / max(self._mean_seconds, 1e-9))))

    @property
    def handler_seconds(self) -> float | None:
        return self._mean_seconds

    @property
    def run_length(self) -> int:
        return self.chunk_size

    @property
    def capacity(self) -> int:
        """A chunk per worker, plus one chunk each waiting so that a worker never idles
        while the control thread catches up (only when chunks hold several records)."""
        chunk = self.chunk_size
        return self.workers * (chunk if chunk == 1 else 2 * chunk)

    def start(self, work: Work, completions: Completions) -> None:
        if not callable(work.handler):
            raise TypeError("the thread executor needs a callable handler")
        self._batch_size = work.batch_size
        self._handler = work.traced(work.handler, self.traces)
        self._completions = completions
        self._unordered = work.ordering == "unordered"
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work,
                args=(work, completions),
                name=f"parafka-worker-{number}",
                daemon=True,  # a handler stuck forever must not keep the process alive
            )
            thread.start()
            self._threads.append(thread)

    def _work(self, work: Work, completions: Completions) -> None:
        handler = self._handler
        decoder = work.decoder()
        get, put, clock = self._queue.get, completions.put, time.perf_counter
        unordered = work.ordering == "unordered"
        running = self._running
        me = threading.get_ident()
        while (item := get()) is not None:
            started = clock()
            if isinstance(item, Chunk):  # records one by one: see chunks.py
                item.started = started
                running[me] = item
                try:
                    run_units(handler, item, work, decoder, unordered)
                finally:
                    del running[me]
                records: Sequence[Record] = item.done
                outcomes = item.outcomes
                result = item.take_done()
            else:  # a batch: one handler call (or a few, to isolate a failure)
                records = item
                try:
                    outcomes = run_chunk(handler, records, work, decoder).outcomes
                except BaseException as exc:  # SystemExit/KeyboardInterrupt from a handler
                    outcomes = fail_first(records, exc)
                result = ChunkResult(records, outcomes)
            if not records:
                continue  # every unit was taken by other workers before this one started
            per_record = (clock() - started) / len(records)
            self._mean_seconds += 0.2 * (per_record - self._mean_seconds)
            if self.timings is not None:
                self.timings.chunk(records, per_record * len(records), outcomes)
            if result is not None:
                put(result)

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        put = self._queue.put
        if self._batch_size is not None:
            for batch in pack_runs(runs, self._batch_size):
                put(batch)
            return
        total = sum(len(run) for run in runs)
        # Spread small hand-overs over the workers (those the adaptive limit lets run).
        workers = min(self.workers, self.active or self.workers)
        size = min(self.chunk_size, -(-total // workers))
        for units in pack_units(runs, size, self._unordered):
            put(Chunk(units))

    def rescue(self) -> None:
        """A chunk running far longer than its records should take has a hung handler:
        report what it finished, and give the units it has not started to other workers."""
        now = time.perf_counter()
        completions = self._completions
        if now < self._rescue_at or completions is None:
            return
        self._rescue_at = now + RESCUE_EVERY
        late = now - max(HANG_AFTER, 10 * self.CHUNK_SECONDS)
        for chunk in list(self._running.values()):
            if chunk.started > late:
                continue
            stolen = chunk.steal()
            finished = chunk.take_done()
            if finished is not None:
                completions.put(finished)
            if stolen:
                self._queue.put(Chunk(deque(stolen)))
                log.debug("a handler runs long: %d unit(s) of its chunk go elsewhere", len(stolen))

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
