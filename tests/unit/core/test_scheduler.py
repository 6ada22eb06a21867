"""The scheduler driven directly on entries (the ledger's random schedules are in
test_ledger.py)."""

from __future__ import annotations

import pytest

from parafka.core.entry import DONE, QUEUED, RETRY_WAIT, RUNNING, Entry
from parafka.core.record import Record
from parafka.core.scheduler import ORDERINGS, RUN_IN_C, Scheduler
from tests.unit.entries import wrap


def add(sch: Scheduler, records: list[Record]) -> list[Entry]:
    entries = wrap(records, sch.ordering)
    sch.add_many(entries)
    return entries


def take(sch: Scheduler) -> list[list[Entry]]:
    runs = sch.take()
    for run in runs:
        for entry in run:
            entry.state = RUNNING
    return runs


def finish(sch: Scheduler, entries: list[Entry]) -> list[Entry]:
    for entry in entries:
        entry.state = DONE
    return sch.finished(entries)


def retry(sch: Scheduler, entry: Entry, due: float) -> None:
    entry.state, entry.due = RETRY_WAIT, due
    sch.retry(entry)


def unrun(sch: Scheduler, entries: list[Entry]) -> None:
    for entry in entries:
        entry.state = QUEUED
    sch.unrun(entries)


def test_key_mode_failed_record_blocks_only_its_key() -> None:
    sch = Scheduler("key", 10)
    a0, a1, b0, b1 = add(
        sch, [Record("t", 0, 0, b"a"), Record("t", 0, 1, b"a"), Record("t", 0, 2, b"b")]
    ) + add(sch, [Record("t", 0, 3, b"b")])
    assert take(sch) == [[a0], [b0]]
    retry(sch, a0, 10.0)
    assert finish(sch, [b0]) == [b0]
    assert take(sch) == [[b1]]  # key b flows, key a waits for its retry
    assert sch.release_due(5.0) == 0 and sch.take() == []
    assert sch.release_due(10.0) == 1
    assert take(sch) == [[a0]]
    finish(sch, [a0])
    assert take(sch) == [[a1]]


def test_a_finished_entry_behind_an_unfinished_one_waits_in_its_shard() -> None:
    """A run [a, b]: b finishes first; it leaves its shard (and may settle) only with a."""
    sch = Scheduler("key", concurrency=10, run_length=2)
    a, b = add(sch, [Record("t", 0, 0, b"k"), Record("t", 0, 1, b"k")])
    assert take(sch) == [[a, b]]
    assert finish(sch, [b]) == []
    assert sch.in_flight == 2 and sch.take() == []
    assert finish(sch, [a]) == [a, b]
    assert sch.in_flight == 0


@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_runs_hold_consecutive_records_of_a_shard(ordering: str) -> None:
    sch = Scheduler(ordering, concurrency=100, run_length=3)  # type: ignore[arg-type]
    entries = add(sch, [Record("t", 0, o, b"k") for o in range(7)])
    (run,) = take(sch)
    assert run == entries[:3]
    assert sch.take() == []  # the shard is busy until the run resolves
    finish(sch, [run[0]])
    retry(sch, run[1], 5.0)
    unrun(sch, run[2:])
    assert sch.take() == []  # the head waits for its retry; nothing overtakes it
    assert sch.release_due(5.0) == 1
    (again,) = take(sch)
    assert again == entries[1:4]


def test_unrun_entries_start_again_first_in_unordered_mode() -> None:
    sch = Scheduler("unordered", concurrency=10, run_length=4)
    entries = add(sch, [Record("t", 0, o) for o in range(6)])
    run, rest = take(sch)
    assert run == entries[:4] and rest == entries[4:]
    finish(sch, [run[0]])
    unrun(sch, run[1:])
    (again,) = take(sch)
    assert again == entries[1:4]


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_drop_partitions_keeps_entries_in_runs(ordering: str) -> None:
    sch = Scheduler(ordering, 2)  # type: ignore[arg-type]
    entries = add(sch, [Record("t", p, o, b"k") for p in (0, 1) for o in range(3)])
    running = [e for run in take(sch) for e in run]
    dropped = sch.drop_partitions({("t", 0)})
    assert sorted(e.offset for e in dropped) == [
        e.offset for e in entries if e.tp == ("t", 0) and e not in running
    ]
    assert sch.queued == sum(1 for e in entries if e.tp == ("t", 1) and e not in running)
    assert all(e.state is RUNNING for e in running)


def test_drop_partitions_removes_retry_waiters() -> None:
    sch = Scheduler("key", 4)
    first, second = add(sch, [Record("t", 0, 0, b"k"), Record("t", 0, 1, b"k")])
    ((taken,),) = take(sch)
    retry(sch, taken, 1.0)
    assert sch.waiting_retry == 1
    assert sorted(e.offset for e in sch.drop_partitions({("t", 0)})) == [0, 1]
    first.state = second.state = DONE  # whatever the ledger makes of them
    assert sch.queued == 0 and sch.in_flight == 0
    assert sch.release_due(2.0) == 0 and sch.take() == []


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_limit_holds_back_entries_above_offset(ordering: str) -> None:
    sch = Scheduler(ordering, 10)  # type: ignore[arg-type]
    add(sch, [Record("t", 0, o, b"k%d" % o) for o in range(5)])
    sch.limit(("t", 0), 1)
    taken = [e for run in take(sch) for e in run]
    assert sorted(e.offset for e in taken) == ([0] if ordering == "partition" else [0, 1])
    finish(sch, taken)
    if ordering != "partition":
        assert sch.take() == []  # 2..4 are above the limit
    sch.limit(("t", 0), None)
    assert sch.take() != []


def test_unordered_respects_concurrency() -> None:
    sch = Scheduler("unordered", 3)
    add(sch, [Record("t", 0, o) for o in range(10)])
    assert [e.offset for run in take(sch) for e in run] == [0, 1, 2]
    assert sch.take() == []
    assert sch.queued == 7 and sch.in_flight == 3


def test_a_key_is_a_shard_per_partition_and_null_keys_share_one() -> None:
    """Shard keys are per partition: the same key in two partitions (or topics) is two
    shards; records without a key share one shard per partition in key mode."""
    sch = Scheduler("key", 10)
    a0, b0, c0, n0, n1 = add(
        sch,
        [
            Record("t", 0, 0, b"a"),
            Record("t", 1, 0, b"a"),
            Record("u", 0, 0, b"a"),
            Record("t", 0, 1, None),
            Record("t", 0, 2, None),
        ],
    )
    assert take(sch) == [[a0], [b0], [c0], [n0]]  # n1 waits behind n0, the others run
    assert finish(sch, [b0, c0, a0]) == [b0, c0, a0]
    assert take(sch) == []
    assert finish(sch, [n0]) == [n0]
    assert take(sch) == [[n1]]


def test_a_lone_entry_becomes_a_queue_when_a_second_arrives_while_it_runs() -> None:
    """A key's one record runs; a second record of the key arrives: it waits for the first
    (the shard stays busy across the change of form), then runs."""
    sch = Scheduler("key", 10)
    (a0,) = add(sch, [Record("t", 0, 0, b"a")])
    assert take(sch) == [[a0]]
    (a1,) = add(sch, [Record("t", 0, 1, b"a")])
    assert take(sch) == []
    assert finish(sch, [a0]) == [a0]
    assert take(sch) == [[a1]]
    assert finish(sch, [a1]) == [a1]
    assert list(sch.shard_entries(a1)) == []


@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_a_long_run_that_finished_whole_leaves_and_the_next_one_starts(ordering: str) -> None:
    """A run longer than RUN_IN_C leaves its queue in one step (scheduler.py); the records
    that arrived while it ran stay, and form the next run."""
    sch = Scheduler(ordering, concurrency=100, run_length=RUN_IN_C + 4)  # type: ignore[arg-type]
    first = add(sch, [Record("t", 0, o, b"k") for o in range(RUN_IN_C + 4)])
    (run,) = take(sch)
    assert run == first
    later = add(sch, [Record("t", 0, o, b"k") for o in range(len(first), len(first) + 3)])
    assert finish(sch, run) == first
    assert sch.in_flight == 0
    assert take(sch) == [later]
    assert finish(sch, later) == later
    assert list(sch.shard_entries(later[0])) == []


def test_long_runs_reported_interleaved_or_in_parts_leave_in_shard_order() -> None:
    """Reports that do not hold a long run whole and in order (another key's run between
    its records, or half of it) leave the same entries as one record at a time would."""
    sch = Scheduler("key", concurrency=100, run_length=RUN_IN_C + 3)
    length = RUN_IN_C + 3
    entries = add(
        sch, [Record("t", 0, 2 * o + k, b"ab"[k : k + 1]) for o in range(length) for k in (0, 1)]
    )
    a, b = entries[0::2], entries[1::2]
    assert take(sch) == [a, b]
    interleaved = [e for pair in zip(a, b, strict=True) for e in pair]
    left = finish(sch, interleaved)
    assert sorted(left, key=lambda e: e.offset) == entries
    assert [e for e in left if e.key == b"a"] == a and [e for e in left if e.key == b"b"] == b
    assert sch.in_flight == 0

    later = add(sch, [Record("t", 0, 100 + o, b"a") for o in range(length)])
    (run,) = take(sch)
    assert run == later
    half = length // 2
    assert finish(sch, run[half:]) == []  # behind an unfinished record of its run: they wait
    assert finish(sch, run[:half]) == later
    assert sch.in_flight == 0


def test_entries_compare_by_identity() -> None:
    """Scheduler.finished compares reported runs with its queues as lists (in C): two
    entries of the same record (a redelivery) must not be equal."""
    one, two = wrap([Record("t", 0, 5, b"k")] * 2)
    assert one != two and one == one


def test_a_long_run_half_reported_leaves_only_its_finished_head() -> None:
    """A report holds the head of a long run and, after it, other keys' records instead of
    the rest of the run: the head leaves, the rest of its run stays busy, the others leave."""
    length = RUN_IN_C + 3
    sch = Scheduler("key", concurrency=100, run_length=length)
    run_a = add(sch, [Record("t", 0, o, b"a") for o in range(length)])
    lone = add(sch, [Record("t", 0, length + o, b"%d" % o) for o in range(length - 1)])
    assert take(sch) == [run_a] + [[e] for e in lone]
    assert finish(sch, [run_a[0], *lone]) == [run_a[0], *lone]
    assert sch.in_flight == length - 1
    assert finish(sch, run_a[1:]) == run_a[1:]
    assert sch.in_flight == 0
