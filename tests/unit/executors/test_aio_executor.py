"""The asyncio executor driven directly, without a broker."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parafka import Output
from parafka.core.record import Record
from parafka.executors import NOT_RUN, ChunkResult, Completions, Outcome, Work, make_executor
from parafka.executors.aio import AsyncExecutor
from tests.unit.entries import wrap_runs


def recs(n: int, start: int = 0, key: bytes = b"k") -> list[Record]:
    return [Record("t", 0, o, key) for o in range(start, start + n)]


class Harness:
    """An executor with its completion queue, collecting what it reports."""

    def __init__(self, handler: Callable[..., Any], concurrency: int = 100, **work: Any) -> None:
        self.completions = Completions()
        self.executor = AsyncExecutor(concurrency)
        self.executor.start(Work(handler, **work), self.completions)
        self.chunks: list[ChunkResult] = []

    def submit(self, runs: list[list[Record]]) -> None:
        """Submit runs of records, wrapped into entries as the engine hands them over."""
        self.executor.submit(wrap_runs(runs))

    def collect(self, count: int, timeout: float = 5.0) -> list[tuple[Record, Outcome | None]]:
        """Wait until `count` records were reported in all; every (record, outcome)."""
        deadline = time.monotonic() + timeout
        while self.reported < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.reported} of {count} records reported in {timeout} s")
            self.completions.wait(min(left, 0.05))
            self.chunks.extend(self.completions.drain())
        return [
            (entry.record, None if outcomes is None else outcomes[i])
            for entries, outcomes in self.chunks
            for i, entry in enumerate(entries)
        ]

    @property
    def reported(self) -> int:
        return sum(len(records) for records, _ in self.chunks)


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    """Harnesses made in a test, shut down after it whatever happened."""
    made: list[Harness] = []
    yield made
    for harness in made:
        harness.executor.shutdown(0.0)


def test_make_executor_builds_it_and_sizes_follow_batches() -> None:
    executor = make_executor("async", 300)
    assert isinstance(executor, AsyncExecutor)
    assert (executor.capacity, executor.run_length) == (300, 1)
    batched = AsyncExecutor(4)

    async def handle(batch: list[Record]) -> None:
        return None

    batched.start(Work(handle, batch_size=50), Completions())
    try:
        assert (batched.capacity, batched.run_length) == (200, 50)
    finally:
        assert batched.shutdown(1.0)


def test_many_sleeps_run_at_the_same_time(harnesses: list[Harness]) -> None:
    peak, running = [0], [0]

    async def handle(record: Record) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1

    harnesses.append(h := Harness(handle, concurrency=200))
    started = time.monotonic()
    h.submit([[r] for r in recs(200)])
    results = h.collect(200)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0  # serially: 10 s
    assert peak[0] == 200
    assert all(outcome is None for _, outcome in results)


def test_never_more_than_concurrency_calls_at_once(harnesses: list[Harness]) -> None:
    running, peak = [0], [0]

    async def handle(record: Record) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.005)
        running[0] -= 1

    harnesses.append(h := Harness(handle, concurrency=3))
    h.submit([[r] for r in recs(30)])  # more than the window: the rest wait
    h.collect(30)
    assert peak[0] == 3


def test_results_are_reported_in_few_chunks(harnesses: list[Harness]) -> None:
    started = [0]
    release: list[asyncio.Event] = []

    async def handle(record: Record) -> None:
        # Every run ends in the same loop iteration: once all 500 have started (timers
        # would spread the ends over iterations on a busy machine).
        if not release:
            release.append(asyncio.Event())
        started[0] += 1
        if started[0] == 500:
            release[0].set()
        await release[0].wait()

    harnesses.append(h := Harness(handle, concurrency=500))
    h.submit([[r] for r in recs(500)])
    h.collect(500)
    assert len(h.chunks) <= 5  # runs finishing together are reported together


def test_a_run_executes_in_order_and_stops_at_the_first_failure(
    harnesses: list[Harness],
) -> None:
    seen: list[int] = []

    async def handle(record: Record) -> bytes | None:
        await asyncio.sleep(0.01 * (5 - record.offset))  # later records would finish first
        seen.append(record.offset)
        if record.offset == 2:
            raise ValueError("bad")
        return b"out" if record.offset == 1 else None

    harnesses.append(h := Harness(handle, default_topic="sink"))
    h.submit([recs(5)])
    results = h.collect(5)
    assert seen == [0, 1, 2]
    assert [r.offset for r, _ in results] == [0, 1, 2, 3, 4]
    outcomes = [o for _, o in results]
    assert outcomes[0] is None
    assert outcomes[1] == ([("sink", b"out", None, None)], None)
    assert outcomes[2] is not None and isinstance(outcomes[2][1], ValueError)
    assert outcomes[3] == NOT_RUN and outcomes[4] == NOT_RUN


def test_runs_of_different_keys_overlap_but_each_keeps_its_order(
    harnesses: list[Harness],
) -> None:
    seen: dict[bytes | None, list[int]] = {b"a": [], b"b": []}

    async def handle(record: Record) -> None:
        await asyncio.sleep(random.uniform(0.001, 0.01))
        seen[record.key].append(record.offset)

    harnesses.append(h := Harness(handle))
    started = time.monotonic()
    h.submit([recs(20, key=b"a"), recs(20, start=20, key=b"b")])
    h.collect(40)
    assert seen == {b"a": list(range(20)), b"b": list(range(20, 40))}
    assert time.monotonic() - started < 0.3  # side by side: serially about 0.22 s each


def test_outputs_are_normalised_and_a_bad_return_is_a_failure(harnesses: list[Harness]) -> None:
    async def handle(record: Record) -> object:
        return [
            "text",
            Output({"n": 1}, key="k", topic="other"),
            {"n": 2},
            b"raw",
            42,  # not an output: TypeError
        ][record.offset]

    harnesses.append(h := Harness(handle, default_topic="sink"))
    h.submit([[r] for r in recs(5)])
    outcomes = {r.offset: o for r, o in h.collect(5)}
    assert outcomes[0] == ([("sink", b"text", None, None)], None)
    assert outcomes[1] == ([("other", b'{"n":1}', b"k", None)], None)
    assert outcomes[2] == ([("sink", b'{"n":2}', None, None)], None)
    assert outcomes[3] == ([("sink", b"raw", None, None)], None)
    assert outcomes[4] is not None and isinstance(outcomes[4][1], TypeError)


def test_a_batch_handler_gets_the_list_and_its_outputs_belong_to_every_record(
    harnesses: list[Harness],
) -> None:
    batches: list[list[int]] = []

    async def handle(batch: list[Record]) -> list[Output] | None:
        await asyncio.sleep(0)
        batches.append([r.offset for r in batch])
        if batch[0].offset >= 100:
            raise RuntimeError("model down")
        return [Output(b"%d" % len(batch))]

    harnesses.append(h := Harness(handle, default_topic="sink", batch_size=4))
    # Runs are packed into batches of about 4 records, never split.
    h.submit([recs(2), recs(2, start=2), recs(3, start=4), recs(3, start=100)])
    results = {r.offset: o for r, o in h.collect(10)}
    # The failing batch (one key) is split: its first record is isolated, the rest wait.
    assert sorted(batches) == [[0, 1, 2, 3], [4, 5, 6], [100], [100, 101, 102]]
    assert all(results[i] == ([("sink", b"4", None, None)], None) for i in range(4))
    assert all(results[i] == ([("sink", b"3", None, None)], None) for i in (4, 5, 6))
    failed = results[100]
    assert failed is not None and isinstance(failed[1], RuntimeError)
    assert results[101] == results[102] == NOT_RUN


@pytest.mark.parametrize("run_length", [1, 2])
def test_a_cancelled_error_raised_by_the_handler_is_a_failure(
    harnesses: list[Harness], run_length: int
) -> None:
    async def handle(record: Record) -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
        task.cancel()
        await task  # the handler's own cancellation leaks out of it

    harnesses.append(h := Harness(handle))
    h.submit([recs(run_length)])
    results = h.collect(run_length)
    assert results[0][1] is not None and isinstance(results[0][1][1], asyncio.CancelledError)
    assert all(outcome == NOT_RUN for _, outcome in results[1:])
    h.submit([recs(1, start=10)])  # the worker survived it
    assert h.collect(run_length + 1)[-1][0].offset == 10


def test_system_exit_in_a_handler_fails_its_record_and_keeps_the_loop(
    harnesses: list[Harness],
) -> None:
    async def handle(record: Record) -> None:
        if record.offset == 0:
            raise SystemExit(3)  # escaping into the loop it would stop every other record

    harnesses.append(h := Harness(handle))
    h.submit([recs(1)])
    h.collect(1)
    h.submit([recs(1, start=1)])
    results = {r.offset: o for r, o in h.collect(2)}
    assert results[0] is not None and isinstance(results[0][1], SystemExit)
    assert results[1] is None


def test_every_submitted_record_is_reported_exactly_once(harnesses: list[Harness]) -> None:
    rng = random.Random(7)
    failing = {o for o in range(3000) if rng.random() < 0.05}

    async def handle(record: Record) -> bytes | None:
        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.003)))
        if record.offset in failing:
            raise ValueError(record.offset)
        return b"x" if record.offset % 3 == 0 else None

    harnesses.append(h := Harness(handle, concurrency=500, default_topic="sink"))
    records = recs(3000)
    runs: list[list[Record]] = []
    while records:
        size = rng.randint(1, 6)
        runs.append(records[:size])
        records = records[size:]
    for start in range(0, len(runs), 37):  # many submits, as the control loop does
        h.submit(runs[start : start + 37])
    results = h.collect(3000)
    assert h.executor.shutdown(1.0)
    h.chunks.extend(h.completions.drain())  # nothing more may arrive
    assert len(h.chunks) < len(runs)
    assert Counter(r.offset for r, _ in results) == Counter(range(3000))
    assert h.reported == 3000
    for run in runs:  # before a run's first failure: run; after it: not run
        in_run = {record.offset for record in run}
        outcomes = {r.offset: o for r, o in results if r.offset in in_run}
        stopped = False
        for record in run:
            outcome = outcomes[record.offset]
            if stopped:
                assert outcome == NOT_RUN
            elif record.offset in failing:
                assert outcome is not None and isinstance(outcome[1], ValueError)
                stopped = True
            else:
                assert outcome != NOT_RUN


def test_shutdown_waits_for_running_handlers(harnesses: list[Harness]) -> None:
    async def handle(record: Record) -> None:
        await asyncio.sleep(0.1)

    harnesses.append(h := Harness(handle, concurrency=4))
    h.submit([[r] for r in recs(10)])  # 4 running, 6 handed over and waiting
    assert h.executor.shutdown(5.0)
    h.chunks.extend(h.completions.drain())
    assert h.reported == 10
    with pytest.raises(RuntimeError, match="shutdown"):
        h.submit([recs(1)])


def test_shutdown_cancels_what_outlives_the_timeout_without_reporting_it(
    harnesses: list[Harness],
) -> None:
    cancelled = threading.Event()

    async def handle(record: Record) -> None:
        if record.offset == 0:
            await asyncio.sleep(0.01)
            return
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    harnesses.append(h := Harness(handle))
    h.submit([[r] for r in recs(3)])
    h.collect(1)
    started = time.monotonic()
    assert h.executor.shutdown(0.3) is False
    assert 0.25 < time.monotonic() - started < 0.8
    assert cancelled.is_set()
    h.chunks.extend(h.completions.drain())
    assert [e.record.offset for entries, _ in h.chunks for e in entries] == [0]


def test_shutdown_returns_at_its_deadline_when_a_handler_blocks_the_loop(
    harnesses: list[Harness],
) -> None:
    release = threading.Event()

    async def handle(record: Record) -> None:
        release.wait(10)  # blocks the whole event loop, as time.sleep would

    harnesses.append(h := Harness(handle))
    h.submit([recs(1)])
    try:
        started = time.monotonic()
        assert h.executor.shutdown(0.3) is False
        assert time.monotonic() - started < 0.8
    finally:
        release.set()


def test_shutdown_of_an_idle_executor_is_quick_and_clean(harnesses: list[Harness]) -> None:
    async def handle(record: Record) -> None:
        return None

    harnesses.append(h := Harness(handle))
    thread = h.executor._thread
    assert thread is not None and thread.name == "parafka-asyncio" and thread.is_alive()
    started = time.monotonic()
    assert h.executor.shutdown(0.0)
    assert time.monotonic() - started < 0.5
    # Its own loop thread (another test may have left one of its own: a blocked loop is
    # abandoned by design).
    assert not thread.is_alive()
