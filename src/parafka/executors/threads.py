"""The thread executor: a fixed pool of worker threads, for handlers that wait on I/O."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import cast

from parafka.executors.base import (
    ChunkResult,
    Completions,
    Executor,
    Work,
    fail_first,
    pack_runs,
    run_chunk,
)
from parafka.record import Record

log = logging.getLogger("parafka.executor")


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
        self._queue: queue.SimpleQueue[Sequence[Record] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._mean_seconds = 0.01  # handler time per record, refined as chunks complete
        self._batch_size: int | None = None

    @property
    def chunk_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        return max(1, min(self.MAX_CHUNK, int(self.CHUNK_SECONDS / max(self._mean_seconds, 1e-9))))

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
        handler = work.handler
        assert callable(handler)
        decoder = work.decoder()
        get, put, clock = self._queue.get, completions.put, time.perf_counter
        while (chunk := get()) is not None:
            records = cast("list[Record]", chunk)  # an entry is the record a handler sees
            started = clock()
            try:
                outcomes = run_chunk(handler, records, work, decoder).outcomes
            except BaseException as exc:  # SystemExit/KeyboardInterrupt from a handler
                outcomes = fail_first(records, exc)
            per_record = (clock() - started) / len(chunk)
            self._mean_seconds += 0.2 * (per_record - self._mean_seconds)
            if self.timings is not None:
                self.timings.chunk(records, per_record * len(chunk), outcomes)
            put(ChunkResult(chunk, outcomes))

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        put = self._queue.put
        if self.chunk_size == 1 and all(len(run) == 1 for run in runs):
            for run in runs:
                put(run)
            return
        total = sum(len(run) for run in runs)
        size = self.chunk_size
        if self._batch_size is None:  # spread small hand-overs over the workers
            size = min(size, -(-total // self.workers))
        for chunk in pack_runs(runs, size):
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
