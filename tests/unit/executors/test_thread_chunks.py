"""Thread executor chunks: a failure stops only its own run, and a hung handler holds back
no record of another shard (its finished chunk-mates are reported, its unstarted ones run
on other workers)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import pytest

from parafka.core.outcomes import OneEach
from parafka.core.record import Output, Record
from parafka.executors import NOT_RUN, Completions, Work
from parafka.executors.base import ChunkResult
from parafka.executors.chunks import Chunk, pack_units, run_units
from parafka.executors.threads import ThreadExecutor


def recs(offsets: range, key: bytes = b"k") -> list[Record]:
    return [Record("t", 0, o, key) for o in offsets]


def test_a_failure_stops_the_rest_of_its_run_only() -> None:
    a, b = recs(range(0, 3), b"a"), recs(range(3, 5), b"b")

    def handle(record: Record) -> None:
        if record.offset == 1:
            raise ValueError("bad")

    chunk = Chunk(deque([a, b]))
    run_units(handle, chunk, Work(handle), None, unordered=False)
    result = chunk.take_done()
    assert result is not None and result.outcomes is not None
    assert [r.offset for r in result.records] == [0, 1, 2, 3, 4]
    assert result.outcomes[0] is None
    assert isinstance(result.outcomes[1][1], ValueError)  # type: ignore[index]
    assert result.outcomes[2] == NOT_RUN
    assert result.outcomes[3:] == [None, None]  # the other key's run went on


def test_records_are_reported_once_however_the_chunk_is_taken() -> None:
    chunk = Chunk(deque(recs(range(4))))
    taken: list[ChunkResult] = []

    def handle(record: Record) -> None:
        if record.offset == 2 and (early := chunk.take_done()) is not None:
            taken.append(early)  # taken while the third record runs

    run_units(handle, chunk, Work(handle), None, unordered=True)
    final = chunk.take_done()
    assert final is not None and chunk.take_done() is None
    assert [[r.offset for r in t.records] for t in [*taken, final]] == [[0, 1], [2, 3]]


def test_one_output_each_is_reported_as_one_each_until_a_record_ends_otherwise() -> None:
    """A chunk of the thread executor reports its records' outputs as OneEach while each
    returned one; the first record that returned nothing, or failed, turns the rest of the
    chunk into per-record outcomes, its earlier outputs kept in place."""
    chunk = Chunk(deque(recs(range(5))), each=True)
    taken: list[ChunkResult] = []

    def handle(record: Record) -> Output | bytes | None:
        if record.offset == 2:
            if (early := chunk.take_done()) is not None:
                taken.append(early)  # taken while the third record runs
            return None
        if record.offset == 4:
            raise ValueError("bad")
        return Output(b"%d" % record.offset) if record.offset % 2 else b"%d" % record.offset

    run_units(handle, chunk, Work(handle, default_topic="out"), None, unordered=True)
    final = chunk.take_done()
    assert final is not None
    (early,) = taken
    assert type(early.outcomes) is OneEach
    assert early.outcomes == [("out", b"0", None, None), ("out", b"1", None, None)]
    assert [r.offset for r in final.records] == [2, 3, 4]
    assert final.outcomes is not None and not isinstance(final.outcomes, OneEach)
    assert final.outcomes[:2] == [None, ([("out", b"3", None, None)], None)]
    assert isinstance(final.outcomes[2][1], ValueError)  # type: ignore[index]


@pytest.mark.parametrize("each", [True, False])
def test_a_chunk_reports_one_each_only_when_made_for_it(each: bool) -> None:
    """Process workers read a chunk's per-record outcomes: their chunks never hold OneEach."""
    chunk = Chunk(deque(recs(range(3))), each=each)

    def handle(record: Record) -> bytes:
        return b"%d" % record.offset

    run_units(handle, chunk, Work(handle, default_topic="out"), None, unordered=True)
    outputs = [("out", b"%d" % o, None, None) for o in range(3)]
    result = chunk.take_done()
    assert result is not None
    if each:
        assert type(result.outcomes) is OneEach and result.outcomes == outputs
        assert chunk.outcomes is None
    else:
        assert result.outcomes == [([out], None) for out in outputs]
        assert chunk.outcomes == result.outcomes


def test_units_follow_the_ordering() -> None:
    runs = [recs(range(0, 2), b"a"), recs(range(2, 3), b"b"), recs(range(3, 6), b"c")]
    assert [len(u) for u in pack_units(runs, 3, unordered=True)] == [3, 3]
    packed = pack_units(runs, 3, unordered=False)
    assert [[len(run) for run in chunk] for chunk in packed] == [[2, 1], [3]]


def run_executor(
    handler: Callable[[Record], None], runs: list[list[Record]], unordered: bool, until: float
) -> tuple[ThreadExecutor, Completions, list[Record]]:
    """Submit the runs to a 4-thread executor and collect reported records for a while,
    calling rescue() as the control loop does."""
    completions = Completions()
    executor = ThreadExecutor(4)
    executor._mean_seconds = 1e-6  # a fast handler: chunks of many records
    executor.start(Work(handler, ordering="unordered" if unordered else "key"), completions)
    executor.submit(runs)
    reported: list[Record] = []
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        executor.rescue()
        for result in completions.drain():
            reported.extend(result.records)
        time.sleep(0.005)
    return executor, completions, reported


@pytest.mark.parametrize("unordered", [True, False])
def test_a_hung_handler_holds_back_no_record_of_another_shard(unordered: bool) -> None:
    """One chunk of 400 records, the 101st hangs: the 100 before it are reported and the
    299 after it run on the other threads while it hangs (key order: one key per record,
    except the hung record's own key, whose later record must wait for it)."""
    release = threading.Event()
    hung = 100

    def handle(record: Record) -> None:
        if record.offset == hung:
            release.wait(10)

    if unordered:
        runs = [recs(range(400))]
        waiting = {hung}
    else:
        runs = [[r] for r in recs(range(400))]
        for run in runs:  # a key per record, and the hung record's key twice
            run[0] = Record("t", 0, run[0].offset, b"k%d" % run[0].offset)
        runs[hung] = [Record("t", 0, hung, b"stuck"), Record("t", 0, 400, b"stuck")]
        waiting = {hung, 400}
    executor, completions, reported = run_executor(handle, runs, unordered, until=0.6)
    try:
        offsets = [r.offset for r in reported]
        assert len(offsets) == len(set(offsets))  # none reported twice
        everything = {r.offset for run in runs for r in run}
        assert set(offsets) == everything - waiting
    finally:
        release.set()
        time.sleep(0.05)
        rest = [r.offset for result in completions.drain() for r in result.records]
        executor.shutdown(1.0)
    assert sorted(rest) == sorted(waiting)


def test_outputs_that_cannot_be_normalized_fail_their_record() -> None:
    """An Output with no topic and no default topic fails its record (reported), it does
    not escape the loop and kill the worker."""
    from parafka import Output
    from parafka.core.errors import NoOutputTopic

    chunk = Chunk(deque(recs(range(2))))
    run_units(lambda r: Output(b"x"), chunk, Work(print), None, unordered=True)
    result = chunk.take_done()
    assert result is not None and result.outcomes is not None
    assert [type(o[1]) for o in result.outcomes] == [NoOutputTopic, NoOutputTopic]  # type: ignore[index]


def test_in_partition_order_a_chunk_outlasts_the_wait_for_its_acknowledgements() -> None:
    executor = ThreadExecutor(2)
    executor._mean_seconds = 5e-6  # a 5 us handler
    assert executor.chunk_size == executor.MAX_CHUNK  # 2 ms of it would be 400
    executor.ack_wait = 0.006  # each run waits 6 ms for its outputs' acknowledgement
    assert executor.chunk_size == int(3 * 0.006 / 5e-6)  # runs of 18 ms
    executor.ack_wait = 0.5
    assert executor.chunk_size == executor.MAX_RUN
    executor._mean_seconds = 0.001  # a slow handler: short runs still
    executor.ack_wait = 0.006
    assert executor.chunk_size == 18
    executor.ack_wait = 0.0001  # a quick broker: nothing changes
    assert executor.chunk_size == 2
