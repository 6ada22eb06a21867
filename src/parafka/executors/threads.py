"""The thread executor: a fixed pool of worker threads, for handlers that wait on I/O."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from parafka.core.deserializers import Decode
from parafka.core.outcomes import per_record_outcomes
from parafka.core.record import Record
from parafka.executors.affinity import waited_for_core
from parafka.executors.base import (
    ChunkResult,
    Completions,
    Executor,
    Handler,
    Outcome,
    Work,
    fail_first,
    pack_runs,
    run_chunk,
)
from parafka.executors.chunks import (
    HANG_AFTER,
    RESCUE_EVERY,
    Chunk,
    Unit,
    pack_units,
    run_units,
)
from parafka.executors.handover import HandedOver, StandBy

log = logging.getLogger(__name__)


def _unset(_record: object) -> None:
    raise RuntimeError("ThreadExecutor: start() first")


def _queued_seconds() -> float:
    """Seconds this thread has spent ready to run while other work had the cores (0.0
    where the system keeps no such figure)."""
    return waited_for_core(threading.get_native_id()) or 0.0


class ThreadExecutor(Executor):
    """Worker threads running the handler.

    Records go to the workers in chunks sized from the measured handler time: a
    handler that takes milliseconds gets one record per hand-over (all threads busy),
    one that takes microseconds gets dozens (the hand-over cost is paid per chunk).
    With a batch handler a chunk is one batch.

    A per-record handler measured below INLINE_BELOW a record runs on the control thread
    itself, with a stand-by thread ready to take the loop over if a chunk runs long
    (handover.py); only when the loop can be taken over (`hand_over` set, by
    `ParallelConsumer`). It goes back to worker threads for good when the process used less
    than half a core while a chunk ran there (the handlers wait: threads let them wait
    together), or when the stand-by took over. A handler that grows slower but keeps the
    CPU busy stays: its chunks shrink with it, and worker threads would not run it faster.
    """

    CHUNK_SECONDS = 0.002  # aim for chunks that take about this long to run
    MAX_CHUNK = 256
    # Partition order: a partition's next run waits for this one's acknowledgements
    # (`ack_wait`); a run lasts ACK_RUNS times that wait, up to MAX_RUN records.
    ACK_RUNS = 3
    MAX_RUN = 4096
    INLINE_BELOW = 50e-6  # seconds a record: faster handlers run on the control thread
    WINDOW = 0.1  # seconds of handlers on the control thread between two looks at the CPU
    WAITING_BELOW = 0.5  # of a core, used over a WINDOW: the handlers wait
    # A loop that another thread can take over (ControlLoop.take_over): set, handlers
    # measured fast enough run on the control thread.
    hand_over: Callable[[], None] | None = None

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
        self._job: Work | None = None
        self._decoder: Decode | None = None
        self._inline_now = False  # handlers run on the control thread now
        self._inline_over = False  # they did, and went back to worker threads for good
        self._standby: StandBy | None = None
        self._window_seconds = 0.0  # of chunks on the control thread since the last look
        self._window_cpu = 0.0  # the process's CPU time meanwhile
        self._window_start = (0.0, 0.0)  # when the window began, and _queued_seconds() then
        self._waiting: list[deque[Unit]] = []  # chunks of a hand-over not run yet (inline)

    @property
    def chunk_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        seconds, most = self.CHUNK_SECONDS, self.MAX_CHUNK
        if (covering := self.ACK_RUNS * self.ack_wait) > seconds:
            seconds, most = covering, self.MAX_RUN
        return max(1, min(most, int(seconds / max(self._mean_seconds, 1e-9))))

    @property
    def handler_seconds(self) -> float | None:
        return self._mean_seconds

    @property
    def run_length(self) -> int:
        return self.chunk_size

    @property
    def runs_here(self) -> bool:
        return self._inline_now

    @property
    def capacity(self) -> int:
        """A chunk per worker, plus one chunk each waiting so that a worker never idles
        while the control thread catches up (only when chunks hold several records).
        On the control thread, two chunks: a round of the loop stays a few milliseconds."""
        chunk = self.chunk_size
        if self._inline_now:
            return 2 * chunk
        return self.workers * (chunk if chunk == 1 else 2 * chunk)

    def start(self, work: Work, completions: Completions) -> None:
        if not callable(work.handler):
            raise TypeError("the thread executor needs a callable handler")
        self._batch_size = work.batch_size
        self._handler = work.traced(work.handler, self.traces)
        self._job = work
        self._decoder = work.decoder()  # for the control thread; each worker makes its own
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
                    outcomes = per_record_outcomes(
                        run_chunk(handler, records, work, decoder).outcomes
                    )
                except BaseException as exc:  # SystemExit/KeyboardInterrupt from a handler
                    outcomes = fail_first(records, exc)
                result = ChunkResult(records, outcomes)
            if not records:
                continue  # every unit was taken by other workers before this one started
            self._measured(records, clock() - started, outcomes)
            if result is not None:
                put(result)

    def _measured(
        self, records: Sequence[Record], seconds: float, outcomes: list[Outcome | None] | None
    ) -> None:
        """A chunk of `records` ran in `seconds`: the mean time a record, and the metrics."""
        self._mean_seconds += 0.2 * (seconds / len(records) - self._mean_seconds)
        if self.timings is not None:
            self.timings.chunk(records, seconds, outcomes)

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        put = self._queue.put
        if self._inline_now or self._may_inline():
            self._run_here(runs)
            return
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

    # -- handlers on the control thread (handover.py) -----------------------------------
    def _may_inline(self) -> bool:
        return (
            self.hand_over is not None
            and self._batch_size is None
            and not self._inline_over
            and self._mean_seconds < self.INLINE_BELOW
        )

    def _run_here(self, runs: Sequence[Sequence[Record]]) -> None:
        """Run the chunks on this (the control) thread; see handover.py."""
        work, completions = self._job, self._completions
        assert work is not None and completions is not None
        if self._standby is None:
            self._standby = StandBy(HANG_AFTER, RESCUE_EVERY, self._taken_over)
            log.info(
                "handlers take %.1f us a record: running them on the control thread",
                self._mean_seconds * 1e6,
            )
        self._inline_now = True
        standby, unordered, handler = self._standby, self._unordered, self._handler
        decoder, clock, cpu = self._decoder, time.perf_counter, time.process_time
        waiting = self._waiting
        waiting.extend(pack_units(runs, self.chunk_size, unordered))
        while waiting:
            chunk = Chunk(waiting.pop(0))
            started, used = clock(), cpu()
            standby.running(chunk)
            try:
                run_units(handler, chunk, work, decoder, unordered)
            finally:
                still = standby.done()
            seconds, used = clock() - started, cpu() - used
            result = chunk.take_done()
            if result is not None:
                completions.put(result)
            if not still:
                raise HandedOver
            if not chunk.done:
                continue
            self._measured(chunk.done, seconds, chunk.outcomes)
            if self._judge_window(seconds, used):
                return

    def _judge_window(self, seconds: float, used: float) -> bool:
        """Handlers that wait (the process used under WAITING_BELOW of a core while they
        ran, over a window of WINDOW seconds, their time in the run queue left out: one chunk
        can lose its core to the broker or a librdkafka thread) go back to worker threads.
        True if they did."""
        if self._window_seconds == 0.0:  # a window starts: note the time and the queueing
            self._window_start = (time.perf_counter() - seconds, _queued_seconds())
        self._window_seconds += seconds
        self._window_cpu += used
        if self._window_seconds < self.WINDOW:
            return False
        # Time this thread stood in the run queue (the machine's other work had the cores)
        # is not the handlers' waiting: take the chunks' part of it out of their time.
        started, queued = self._window_start
        span = max(time.perf_counter() - started, self._window_seconds)
        queued = (_queued_seconds() - queued) * self._window_seconds / span
        share = self._window_cpu / max(self._window_seconds - queued, 1e-9)
        self._window_seconds = self._window_cpu = 0.0
        if share >= self.WAITING_BELOW:
            return False
        self._back_to_workers(f"the process used {share:.0%} of a core while handlers ran")
        return True

    def _leave_inline(self) -> None:
        """Worker threads run every chunk from now on, those not run yet first."""
        self._inline_now, self._inline_over = False, True
        for units in self._waiting:
            self._queue.put(Chunk(units))
        self._waiting.clear()

    def _back_to_workers(self, why: str) -> None:
        self._leave_inline()
        if self._standby is not None:
            self._standby.close()
        log.info("%s: worker threads run them from now on", why)

    def _taken_over(self, chunk: Chunk) -> None:
        """On the stand-by thread: a chunk has run long on the control thread. Report what
        it finished, give what it has not started to the workers, and go on with the loop."""
        self._split(chunk)
        self._leave_inline()
        log.warning(
            "a handler has run more than %.1f s on the control thread: this thread goes on "
            "with the loop, and worker threads run the handlers from now on",
            HANG_AFTER,
        )
        assert self.hand_over is not None
        self.hand_over()

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
            if stolen := self._split(chunk):
                log.debug("a handler runs long: %d unit(s) of its chunk go elsewhere", stolen)

    def _split(self, chunk: Chunk) -> int:
        """A chunk whose handler runs long: report the records it finished, and give the
        units nobody started to other workers (taken first: its thread starts no more).
        Returns how many units were given."""
        assert self._completions is not None
        stolen = chunk.steal()
        finished = chunk.take_done()
        if finished is not None:
            self._completions.put(finished)
        if stolen:
            self._queue.put(Chunk(deque(stolen)))
        return len(stolen)

    def shutdown(self, timeout: float) -> bool:
        if self._standby is not None:
            self._standby.close()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        if alive:
            log.warning("%d handler thread(s) still running at shutdown; abandoned", len(alive))
        return not alive
