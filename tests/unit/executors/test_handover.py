"""Handlers on the control thread (handover.py): fast handlers run on the thread that
submits; one that waits sends them back to worker threads for good; a hung one makes the
stand-by thread take the loop over, and the other records go on without it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from parafka.core.record import Record
from parafka.executors import Completions, Work
from parafka.executors.handover import HandedOver
from parafka.executors.threads import ThreadExecutor


def recs(offsets: range) -> list[list[Record]]:
    return [[Record("t", 0, o, f"k{o}".encode())] for o in offsets]


class Loop:
    """Stands in for the control loop: records which thread took it over."""

    def __init__(self) -> None:
        self.taken_by: list[str] = []
        self.taken = threading.Event()

    def take_over(self) -> None:
        self.taken_by.append(threading.current_thread().name)
        self.taken.set()


def executor_for(
    handler: Callable[[Record], object], loop: Loop | None, mean: float = 1e-6
) -> tuple[ThreadExecutor, Completions]:
    completions = Completions()
    executor = ThreadExecutor(4)
    if loop is not None:
        executor.hand_over = loop.take_over
    executor._mean_seconds = mean  # as measured by earlier chunks
    executor.start(Work(handler, ordering="unordered"), completions)
    return executor, completions


def offsets(completions: Completions) -> list[int]:
    return sorted(r.offset for result in completions.drain() for r in result.records)


def wait_for(completions: Completions, count: int, seconds: float = 5.0) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while len(seen) < count and time.monotonic() < deadline:
        completions.wait(0.05)
        seen += offsets(completions)
    return sorted(seen)


def test_fast_handlers_run_on_the_submitting_thread() -> None:
    threads: set[str] = set()
    executor, completions = executor_for(
        lambda r: threads.add(threading.current_thread().name), Loop()
    )
    try:
        executor.submit(recs(range(300)))
        assert offsets(completions) == list(range(300))  # done when submit returns
        assert threads == {threading.current_thread().name}
        assert executor.capacity == 2 * executor.chunk_size
    finally:
        executor.shutdown(1.0)


@pytest.mark.parametrize(
    ("loop", "mean"),
    [(None, 1e-6), (Loop(), 1e-3)],
    ids=["without a loop that can be taken over", "a handler measured slow"],
)
def test_otherwise_workers_run_them(loop: Loop | None, mean: float) -> None:
    threads: set[str] = set()
    executor, completions = executor_for(
        lambda r: threads.add(threading.current_thread().name), loop, mean
    )
    try:
        executor.submit(recs(range(50)))
        assert wait_for(completions, 50) == list(range(50))
        assert threads and all(name.startswith("parafka-worker") for name in threads)
    finally:
        executor.shutdown(1.0)


@pytest.mark.parametrize("waits", [False, True], ids=["a slower handler", "a waiting one"])
def test_only_a_waiting_handler_goes_back_to_workers_for_good(waits: bool) -> None:
    threads: list[str] = []

    def handle(record: Record) -> None:
        threads.append(threading.current_thread().name)
        if record.offset < 10:
            return
        if waits:
            time.sleep(0.002)  # little CPU
        else:  # 2 ms of CPU: far above INLINE_BELOW, but threads would not run it faster
            end = time.process_time() + 0.002
            while time.process_time() < end:
                pass

    executor, completions = executor_for(handle, Loop())
    # Chunks of a record or two (4 ms of CPU at most): far below the stand-by's 0.1 s, so
    # even a loaded machine (the whole suite on two cores) gives no hand-over. Chunks of
    # ten (20 ms) took over 0.1 s once in a fresh-clone CI run.
    executor.CHUNK_SECONDS = 0.000001
    try:
        executor.submit(recs(range(10)))
        assert offsets(completions) == list(range(10))
        executor.submit(recs(range(10, 80)))  # 140 ms: more than one WINDOW
        executor.submit(recs(range(80, 100)))
        assert wait_for(completions, 90) == list(range(10, 100))
        here = threading.current_thread().name
        assert set(threads[:11]) == {here}  # on this thread until the first slower chunk
        if waits:
            assert not any(name == here for name in threads[-20:])
            assert not executor._may_inline()
        else:
            assert set(threads) == {here}
            assert executor.capacity == 2 * executor.chunk_size
    finally:
        executor.shutdown(1.0)


def test_a_hung_handler_hands_the_loop_over_and_holds_back_only_its_record() -> None:
    release = threading.Event()
    loop = Loop()

    def handle(record: Record) -> None:
        if record.offset == 5:
            release.wait(10)

    executor, completions = executor_for(handle, loop)
    executor.CHUNK_SECONDS = 1.0  # one chunk holds every record
    outcome: list[BaseException] = []

    def control() -> None:
        try:
            executor.submit(recs(range(100)))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=control, name="the-control-thread")
    thread.start()
    try:
        assert loop.taken.wait(5), "the stand-by thread did not take over"
        assert loop.taken_by == ["parafka-standby"]
        # The records before the hung one were reported at the hand-over, those after it
        # ran on worker threads; the hung one is still running.
        assert wait_for(completions, 99) == [o for o in range(100) if o != 5]
        assert thread.is_alive() and not outcome
        release.set()
        thread.join(5)
        assert [type(exc) for exc in outcome] == [HandedOver]
        assert offsets(completions) == [5]  # reported once its handler returned
        assert not executor._may_inline()
    finally:
        release.set()
        executor.shutdown(1.0)
