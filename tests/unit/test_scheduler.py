"""Scheduler invariants under random completion orders, for all three ordering modes."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parafka.record import Record
from parafka.scheduler import ORDERINGS, Scheduler


def make_records(n: int, partitions: int, keys: int, rnd: random.Random) -> list[Record]:
    next_offset = [0] * partitions
    records = []
    for _ in range(n):
        p = rnd.randrange(partitions)
        key = f"k{rnd.randrange(keys)}".encode()
        records.append(Record("t", p, next_offset[p], key, b""))
        next_offset[p] += 1
    return records


def shard(ordering: str, r: Record) -> object:
    if ordering == "partition":
        return (r.topic, r.partition)
    if ordering == "key":
        return (r.topic, r.partition, r.key)
    return id(r)


def flat(runs: list[list[Record]]) -> list[Record]:
    return [r for run in runs for r in run]


@pytest.mark.parametrize("ordering", ORDERINGS)
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 300),
    partitions=st.integers(1, 4),
    keys=st.integers(1, 20),
    concurrency=st.integers(1, 16),
    run_length=st.integers(1, 5),
    fail_rate=st.floats(0, 0.3),
)
def test_invariants(
    ordering: str,
    seed: int,
    n: int,
    partitions: int,
    keys: int,
    concurrency: int,
    run_length: int,
    fail_rate: float,
) -> None:
    """Every record finishes once; one run in flight per shard; a run holds consecutive
    records of one shard; shard order is offset order, retries included; in flight never
    exceeds concurrency; records after a failure in a run are given back unrun."""
    rnd = random.Random(seed)
    records = make_records(n, partitions, keys, rnd)
    sch = Scheduler(ordering, concurrency, run_length)  # type: ignore[arg-type]
    feed = list(records)
    running: list[list[Record]] = []
    executed: dict[object, list[int]] = defaultdict(list)
    finished: list[Record] = []
    now = 0.0
    while len(finished) < n:
        for _ in range(rnd.randint(0, 5)):
            if feed:
                sch.add(feed.pop(0))
        now += 1.0
        sch.release_due(now)
        for run in sch.take():
            assert 1 <= len(run) <= run_length
            if ordering != "unordered":
                s = shard(ordering, run[0])
                assert all(shard(ordering, r) == s for r in run)
                assert [r.offset for r in run] == sorted(r.offset for r in run)
                busy = {shard(ordering, r) for other in running for r in other}
                assert s not in busy, "two runs of one shard in flight"
            running.append(run)
        assert sch.in_flight == sum(len(run) for run in running) <= concurrency
        rnd.shuffle(running)
        for _ in range(rnd.randint(0, len(running))):
            run = running.pop()
            for index, r in enumerate(run):  # a worker executes the run in order
                executed[shard(ordering, r)].append(r.offset)
                if rnd.random() < fail_rate:
                    sch.retry(r, now + rnd.choice([0.5, 1.5, 3.0]))
                    if index + 1 < len(run):
                        sch.unrun(run[index + 1 :])
                    break
                sch.done(r)
                finished.append(r)
        if not feed and not running and not sch.take(0):
            now += 5.0  # let retries come due
    assert sorted((r.partition, r.offset) for r in finished) == sorted(
        (r.partition, r.offset) for r in records
    )
    assert sch.held == 0 and sch.in_flight == 0
    if ordering != "unordered":
        for offsets in executed.values():
            # executions per shard never go backwards, except to repeat the failed record
            for a, b in itertools.pairwise(offsets):
                assert b >= a, "a shard executed a record before an older one finished"


def test_key_mode_failed_record_blocks_only_its_key() -> None:
    sch = Scheduler("key", 10)
    a0, a1 = Record("t", 0, 0, b"a"), Record("t", 0, 1, b"a")
    b0, b1 = Record("t", 0, 2, b"b"), Record("t", 0, 3, b"b")
    for r in (a0, a1, b0, b1):
        sch.add(r)
    assert sch.take() == [[a0], [b0]]
    sch.retry(a0, due=10.0)
    sch.done(b0)
    assert sch.take() == [[b1]]  # key b flows, key a waits for its retry
    assert sch.release_due(5.0) == 0
    assert sch.take() == []
    assert sch.release_due(10.0) == 1
    assert sch.take() == [[a0]]
    sch.done(a0)
    assert sch.take() == [[a1]]


def test_partition_mode_serialises_a_partition() -> None:
    sch = Scheduler("partition", 10)
    recs = [Record("t", p, o, b"k%d" % o) for o in range(3) for p in (0, 1)]
    for r in recs:
        sch.add(r)
    first = flat(sch.take())
    assert sorted((r.partition, r.offset) for r in first) == [(0, 0), (1, 0)]


def test_unordered_respects_concurrency() -> None:
    sch = Scheduler("unordered", 3)
    for o in range(10):
        sch.add(Record("t", 0, o))
    assert [r.offset for r in flat(sch.take())] == [0, 1, 2]
    assert sch.take() == []
    assert sch.queued == 7


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_drop_partitions_keeps_running_records(ordering: str) -> None:
    sch = Scheduler(ordering, 2)  # type: ignore[arg-type]
    recs = [Record("t", p, o, b"k") for p in (0, 1) for o in range(3)]
    for r in recs:
        sch.add(r)
    running = flat(sch.take())
    assert len(running) == 2
    dropped = sch.drop_partitions({("t", 0)})
    still_running_p0 = [r for r in running if r.partition == 0]
    assert dropped == 3 - len(still_running_p0)
    for r in running:
        sch.done(r)
    rest = []
    while batch := flat(sch.take()):
        rest += batch
        for r in batch:
            sch.done(r)
    assert all(r.partition == 1 for r in rest)
    assert sch.held == 0 and sch.in_flight == 0


def test_drop_partitions_removes_retry_waiters() -> None:
    sch = Scheduler("key", 4)
    r = Record("t", 0, 0, b"k")
    sch.add(r)
    sch.add(Record("t", 0, 1, b"k"))
    ((taken,),) = sch.take()
    sch.retry(taken, due=1.0)
    assert sch.drop_partitions({("t", 0)}) == 2
    assert sch.held == 0
    assert sch.release_due(2.0) == 0 or sch.take() == []


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_limit_holds_back_records_above_offset(ordering: str) -> None:
    sch = Scheduler(ordering, 10)  # type: ignore[arg-type]
    for o in range(5):
        sch.add(Record("t", 0, o, b"k%d" % o))
    sch.limit(("t", 0), 1)
    taken = flat(sch.take())
    assert sorted(r.offset for r in taken) == ([0] if ordering == "partition" else [0, 1])
    for r in taken:
        sch.done(r)
    if ordering != "partition":
        assert sch.take() == []  # 2..4 are above the limit
    sch.limit(("t", 0), None)
    assert sch.take() != []


@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_runs_hold_consecutive_records_of_a_shard(ordering: str) -> None:
    sch = Scheduler(ordering, concurrency=100, run_length=3)  # type: ignore[arg-type]
    recs = [Record("t", 0, o, b"k") for o in range(7)]
    for r in recs:
        sch.add(r)
    (run,) = sch.take()
    assert run == recs[:3]
    assert sch.take() == []  # the shard is busy until the run settles
    sch.done(run[0])
    sch.retry(run[1], due=5.0)
    sch.unrun(run[2:])
    assert sch.take() == []  # the head waits for its retry; nothing overtakes it
    sch.release_due(5.0)
    (again,) = sch.take()
    assert again == recs[1:4]


def test_unrun_records_start_again_first_in_unordered_mode() -> None:
    sch = Scheduler("unordered", concurrency=10, run_length=4)
    for o in range(6):
        sch.add(Record("t", 0, o))
    run, rest = sch.take()
    assert [r.offset for r in run] == [0, 1, 2, 3] and [r.offset for r in rest] == [4, 5]
    sch.done(run[0])
    sch.unrun(run[1:])
    (again,) = sch.take()
    assert [r.offset for r in again] == [1, 2, 3]


def test_done_out_of_run_order_is_accepted() -> None:
    """A record whose outputs await acknowledgement finishes after later records of its run."""
    sch = Scheduler("key", concurrency=10, run_length=2)
    a, b = Record("t", 0, 0, b"k"), Record("t", 0, 1, b"k")
    sch.add(a)
    sch.add(b)
    assert sch.take() == [[a, b]]
    sch.done(b)
    assert sch.take() == []
    sch.done(a)
    assert sch.held == 0 and sch.in_flight == 0


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_adding_many_is_adding_each(ordering: str) -> None:
    records = make_records(200, 3, 7, random.Random(5))
    one, many = Scheduler(ordering, 50, 4), Scheduler(ordering, 50, 4)
    for record in records:
        one.add(record)
    many.add_many(records)
    assert (one.held, one.queued) == (many.held, many.queued) == (200, 200)
    while one.held:
        taken_one, taken_many = one.take(), many.take()
        assert taken_one == taken_many
        for run in taken_one:
            one.done_many(run)
            many.done_many(run)
    assert many.held == 0


@pytest.mark.parametrize("ordering", ORDERINGS)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 200), run_length=st.integers(1, 6))
def test_settling_runs_at_once_is_settling_each_record(
    ordering: str, seed: int, n: int, run_length: int
) -> None:
    """done_many(runs, in any order and mixed) leaves the scheduler as done() per record."""
    rnd = random.Random(seed)
    records = make_records(n, 2, 5, rnd)
    each, runs_at_once = Scheduler(ordering, 12, run_length), Scheduler(ordering, 12, run_length)
    for scheduler in (each, runs_at_once):
        scheduler.add_many(records)
    in_flight: list[list[Record]] = []
    while each.held:
        taken = each.take()
        assert taken == runs_at_once.take()
        in_flight.extend(taken)
        rnd.shuffle(in_flight)
        finished = [in_flight.pop() for _ in range(rnd.randint(1, len(in_flight)))]
        for run in finished:
            for record in run:
                each.done(record)
        runs_at_once.done_many([r for run in finished for r in run])  # several runs at once
        assert (each.held, each.in_flight, each.queued) == (
            runs_at_once.held,
            runs_at_once.in_flight,
            runs_at_once.queued,
        )
    assert runs_at_once.held == 0 and runs_at_once.take() == []
