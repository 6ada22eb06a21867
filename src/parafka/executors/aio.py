"""The asyncio executor: `async def` handlers on one event loop thread, thousands in flight.

One event loop runs in a daemon thread ("parafka-asyncio"). `submit()` hands each batch of
runs to the loop in one thread-safe call. A run (consecutive records of one shard) is
awaited by one worker task, record after record, stopping at the first failure. Workers
are long-lived, at most `concurrency` of them: waking an idle worker with a future costs
less than a task per run (measured: about 25% more records/s with 1,000 in flight).
Finished runs are reported once per loop iteration, merged into one `ChunkResult`, so
thousands of records finishing together cost one hand-over to the control thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from parafka.core.deserializers import Decode, decode
from parafka.core.errors import RecordParked, RecordStuck
from parafka.core.outcomes import per_record_outcomes
from parafka.core.record import Record, normalize_outputs
from parafka.executors.base import (
    NOT_RUN,
    ChunkResult,
    Completions,
    Executor,
    Outcome,
    Work,
    pack_runs,
    start_batch,
)

log = logging.getLogger(__name__)

AsyncHandler = Callable[[Any], Awaitable[Any]]

# How long past the shutdown deadline the loop gets to cancel its tasks and stop.
STOP_GRACE = 0.1


async def run_chunk_async(
    handler: AsyncHandler, records: Sequence[Record], work: Work, decoder: Decode | None = None
) -> ChunkResult:
    """`run_chunk` for an async handler: await it on each record in order (or once on the
    batch); stop at the first failure, reporting the records after it as not run.

    Any exception the handler raises is a failure outcome, including a `CancelledError`
    of its own making and `KeyboardInterrupt`/`SystemExit` (escaping into the loop they
    would stop it and abandon every other record in flight). Only the cancellation of the
    task itself (at shutdown) propagates, and those records are not reported.
    """
    if work.batch_size is not None:
        return await _run_batch_async(handler, records, work, decoder)
    outcomes: list[Outcome | None] | None = None
    default_topic = work.default_topic
    for index, record in enumerate(records):
        try:
            if decoder is not None:
                record.data = decode(decoder, record.value)
            result = await handler(record)
            if result is None:
                continue
            outcome: Outcome = (normalize_outputs(result, default_topic), None)
        except BaseException as exc:
            if _task_cancelled(exc):
                raise
            outcome = (None, exc)
        if outcomes is None:
            outcomes = [None] * len(records)
        outcomes[index] = outcome
        if outcome[1] is not None:
            outcomes[index + 1 :] = [NOT_RUN] * (len(records) - index - 1)
            break
    return ChunkResult(records, outcomes)


async def _run_batch_async(
    handler: AsyncHandler, records: Sequence[Record], work: Work, decoder: Decode | None
) -> ChunkResult:
    batch = start_batch(records, work, decoder)
    while (members := batch.next_batch()) is not None:
        try:
            result = await handler(members)
            outputs = None if result is None else normalize_outputs(result, work.default_topic)
        except BaseException as exc:
            if _task_cancelled(exc):
                raise
            batch.failed(exc)
            continue
        batch.succeeded(outputs)
    return ChunkResult(records, batch.outcomes())


def _task_cancelled(exc: BaseException) -> bool:
    """True when `exc` is the cancellation of the running task (not one the handler
    raised or let through from something it awaited)."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def merge_results(results: list[ChunkResult]) -> ChunkResult:
    """One ChunkResult holding the records of several (whose shards are distinct: a shard
    has one run in flight at a time). Outcomes stay None when every part's are."""
    if len(results) == 1:
        return results[0]
    records: list[Any] = []
    outcomes: list[Outcome | None] | None = None
    for part_records, part_outcomes in results:
        if part_outcomes is not None:
            if outcomes is None:
                outcomes = [None] * len(records)
            outcomes.extend(per_record_outcomes(part_outcomes) or ())
        elif outcomes is not None:
            outcomes.extend([None] * len(part_records))
        records.extend(part_records)
    return ChunkResult(records, outcomes)


class AsyncExecutor(Executor):
    """`async def` handlers on one event loop, up to `concurrency` handler calls at a time.

    Calls run in long-lived worker tasks (started as needed, at most `concurrency`): handing
    a run to an idle worker costs one future, cheaper than a new task per record. Without
    batches a run is one record (keys interleave freely; the loop, not runs, gives the
    concurrency). With `batch_size` a handler call is one batch.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self._batch_size: int | None = None
        self._handler: AsyncHandler | None = None
        self._work: Work | None = None
        self._completions: Completions | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Touched only on the loop thread:
        self._workers: set[asyncio.Task[None]] = set()
        self._idle: list[asyncio.Future[Sequence[Record] | None]] = []  # one per idle worker
        self._waiting: deque[Sequence[Record]] = deque()  # runs no worker has taken yet
        self._closing = False  # workers exit once nothing is waiting
        self._finished: list[ChunkResult] = []
        self._flush_scheduled = False
        self._closer: asyncio.Task[None] | None = None
        self._drained = True  # set at shutdown: False if a run was going at the deadline

    @property
    def run_length(self) -> int:
        return self._batch_size or 1

    @property
    def capacity(self) -> int:
        return self.concurrency * (self._batch_size or 1)

    def start(self, work: Work, completions: Completions) -> None:
        handler = work.handler
        if not callable(handler):
            raise TypeError(f"the asyncio executor needs an async def handler, got {handler!r}")
        if self._thread is not None:
            raise RuntimeError("this AsyncExecutor was already started; create a new one")
        handler = work.traced(handler, self.traces, is_async=True)
        if self.stuck is not None and self.stuck.acts:
            handler = self._bounded(handler)
        self._handler, self._work, self._completions = handler, work, completions
        self._batch_size = work.batch_size
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._loop,),
            name="parafka-asyncio",
            daemon=True,  # a handler blocking the loop forever must not keep the process alive
        )
        self._thread.start()

    def _bounded(self, handler: AsyncHandler) -> AsyncHandler:
        """`handler`, cancelled when a call runs over stuck_after (--on-stuck): the call
        fails with RecordStuck (retried) or RecordParked (to the failure policy at once).
        Only a handler that awaits can be cancelled; one that blocks the loop cannot."""
        policy = self.stuck
        assert policy is not None
        kind = RecordParked if policy.action == "park" else RecordStuck

        async def bounded(record: Any) -> Any:
            scope = asyncio.timeout(policy.after)
            try:
                async with scope:
                    return await handler(record)
            except TimeoutError:
                if not scope.expired():
                    raise  # the handler's own timeout: an ordinary failure
                self.stuck_replaced += 1
                raise kind(
                    f"ran over {policy.after:g} s (--stuck-after); its task was cancelled "
                    f"(--on-stuck {policy.action})"
                ) from None

        return bounded

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        loop = self._loop
        if loop is None or self._closed:
            raise RuntimeError("AsyncExecutor.submit() needs start() first and no shutdown()")
        if self._batch_size is not None:
            runs = pack_runs(runs, self._batch_size)
        loop.call_soon_threadsafe(self._hand_out, runs)

    def _hand_out(self, runs: Sequence[Sequence[Record]]) -> None:
        """Give each run to an idle worker, else queue it (starting a worker if allowed)."""
        idle, waiting = self._idle, self._waiting
        for records in runs:
            if idle:
                idle.pop().set_result(records)
                continue
            waiting.append(records)
            if len(self._workers) < self.concurrency:
                assert self._loop is not None
                self._workers.add(self._loop.create_task(self._worker()))

    async def _worker(self) -> None:
        """Run handed-out runs one after another until shutdown; a cancellation (at
        shutdown) ends the worker and leaves its run unreported."""
        handler, work, loop = self._handler, self._work, self._loop
        assert handler is not None and work is not None and loop is not None
        idle, waiting, finished = self._idle, self._waiting, self._finished
        single, topic, normalize = work.batch_size is None, work.default_topic, normalize_outputs
        decoder = work.decoder()
        timings, clock = self.timings, time.perf_counter
        try:
            while True:
                if waiting:
                    items = waiting.popleft()
                elif self._closing:
                    return
                else:
                    wake: asyncio.Future[Sequence[Record] | None] = loop.create_future()
                    idle.append(wake)
                    handed = await wake
                    if handed is None:
                        return
                    items = handed
                records = cast("list[Record]", items)  # an entry is the record a handler sees
                started = clock() if timings is not None else 0.0
                if single and len(records) == 1 and decoder is None:
                    # run_chunk_async inlined for the common case: one coroutine frame less
                    # per record, measured as ~15% less loop CPU with 3,000 in flight.
                    outcomes: list[Outcome | None] | None
                    try:
                        result = await handler(records[0])
                        outcomes = None if result is None else [(normalize(result, topic), None)]
                    except BaseException as exc:
                        if _task_cancelled(exc):
                            raise
                        outcomes = [(None, exc)]
                    finished.append(ChunkResult(items, outcomes))
                else:
                    result = await run_chunk_async(handler, records, work, decoder)
                    finished.append(ChunkResult(items, result.outcomes))
                if timings is not None:
                    timings.chunk(records, clock() - started, finished[-1].outcomes)
                if not self._flush_scheduled:
                    self._flush_scheduled = True
                    loop.call_soon(self._flush)
        finally:
            self._workers.discard(asyncio.current_task())

    def _flush(self) -> None:
        """Report every run finished since the last flush, as one chunk result."""
        self._flush_scheduled = False
        if self._finished:
            assert self._completions is not None
            finished = self._finished[:]
            self._finished.clear()
            self._completions.put(merge_results(finished))

    def shutdown(self, timeout: float) -> bool:
        loop, thread = self._loop, self._thread
        if self._closed or loop is None or thread is None:
            self._closed = True
            return thread is None or not thread.is_alive()
        self._closed = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(RuntimeError):  # the loop is closed already: nothing runs
            loop.call_soon_threadsafe(self._begin_close, deadline)
        thread.join(max(0.0, deadline - time.monotonic()) + STOP_GRACE)
        if thread.is_alive():
            log.warning(
                "the asyncio loop was still busy %.1f s after shutdown began (a handler "
                "blocks it, e.g. with time.sleep); abandoned",
                timeout,
            )
            return False
        if not self._drained:
            log.warning("async handler(s) still running at shutdown were cancelled")
        return self._drained

    def _begin_close(self, deadline: float) -> None:
        assert self._loop is not None
        self._closer = self._loop.create_task(self._close(deadline))

    async def _close(self, deadline: float) -> None:
        """Let the workers finish what was handed out until `deadline`, cancel the rest,
        report what finished, stop the loop."""
        assert self._loop is not None
        self._closing = True
        for wake in self._idle:
            wake.set_result(None)
        self._idle.clear()
        workers = set(self._workers)
        if workers:
            _, going = await asyncio.wait(workers, timeout=max(0.0, deadline - time.monotonic()))
            if going:
                self._drained = False
                for task in going:
                    task.cancel()
                await asyncio.wait(going, timeout=STOP_GRACE / 2)
        self._flush()
        self._loop.stop()
