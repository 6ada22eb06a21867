"""Offset tracking: the committable position never passes an unfinished record."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parafka.core import offsets as offsets_module
from parafka.core.offsets import PartitionOffsets


def test_position_is_lowest_unfinished() -> None:
    po = PartitionOffsets(committed=10)
    for offset in range(10, 15):
        assert po.receive(offset)
    assert po.position == 10
    po.finish(12)
    po.finish(11)
    assert po.position == 10
    assert sorted(po.done_above) == [11, 12]
    po.finish(10)
    assert po.position == 13
    assert po.done_above == []
    po.finish(14)
    po.finish(13)
    assert po.position == 15


def test_gaps_in_offsets_do_not_block() -> None:
    """Transaction markers and compaction leave holes; the position jumps over them."""
    po = PartitionOffsets(committed=None)
    for offset in (3, 7, 8):
        po.receive(offset)
    po.finish(3)
    assert po.position == 7
    po.finish(8)
    po.finish(7)
    assert po.position == 9


def test_restored_done_offsets_are_skipped_and_kept_in_metadata() -> None:
    po = PartitionOffsets(committed=100, done_above={102, 105})
    assert po.receive(100)
    assert po.receive(101)
    # not received again yet: still reported as done above the position
    assert sorted(po.done_above) == [102, 105]
    assert not po.receive(102)  # already done: skip
    assert po.position == 100
    assert sorted(po.done_above) == [102, 105]
    po.finish(100)
    po.finish(101)
    assert po.position == 103
    assert po.done_above == [105]


def test_needs_commit_tracks_changes() -> None:
    po = PartitionOffsets(committed=0)
    assert not po.needs_commit()
    po.receive(0)
    assert not po.needs_commit()
    po.finish(0)
    assert po.needs_commit()
    po.mark_committed(1)
    assert not po.needs_commit()
    assert po.committed == 1
    po.mark_dirty()
    assert po.needs_commit()


@given(st.integers(0, 10**6), st.lists(st.integers(1, 5), min_size=1, max_size=200), st.randoms())
def test_position_matches_model_under_random_completion(
    start: int, steps: list[int], rnd: object
) -> None:
    """Whatever order records finish in, position == lowest unfinished received offset."""
    import random

    assert isinstance(rnd, random.Random)
    offsets, offset = [], start
    for step in steps:
        offsets.append(offset)
        offset += step  # gaps between offsets
    po = PartitionOffsets(committed=start)
    for o in offsets:
        po.receive(o)
    order = offsets[:]
    rnd.shuffle(order)
    finished: set[int] = set()
    for o in order:
        po.finish(o)
        finished.add(o)
        unfinished = [x for x in offsets if x not in finished]
        expected = unfinished[0] if unfinished else offsets[-1] + 1
        assert po.position == expected
        assert set(po.done_above) == {x for x in finished if x > expected}
        assert po.pending_count == len(unfinished)


def test_skipped_offsets_that_never_arrive_are_dropped() -> None:
    """A previous owner's finished offset that never comes back (compaction) must not be
    reported at or below the position, where the codec cannot store it."""
    po = PartitionOffsets(committed=10, done_above={11, 20})
    po.receive(10)
    po.receive(12)  # 11 was compacted away
    po.finish(10)
    po.finish(12)
    assert po.position == 13
    assert po.done_above == [20]


@given(
    # offsets with gaps, or none (then settle finds each flag by its distance alone)
    st.lists(st.integers(1, 3), min_size=1, max_size=120)
    | st.lists(st.just(1), min_size=1, max_size=120),
    st.lists(st.integers(1, 40), min_size=1, max_size=10),
    st.randoms(),
)
def test_settling_runs_is_finishing_each_record(
    steps: list[int], cuts: list[int], rnd: object
) -> None:
    """settle(offsets) of runs, in any order, leaves the same state as finish() of each
    (settle leaves `running` to the ledger)."""
    import random

    assert isinstance(rnd, random.Random)
    offsets, offset = [], 0
    for step in steps:
        offsets.append(offset)
        offset += step
    order = offsets[:]
    rnd.shuffle(order)
    runs, at = [], 0
    for cut in cuts * len(order):
        if at >= len(order):
            break
        runs.append(sorted(order[at : at + cut]))  # a run is in offset order
        at += cut
    by_run, by_record = PartitionOffsets(committed=0), PartitionOffsets(committed=0)
    for state in (by_run, by_record):
        for o in offsets:
            state.receive(o)
        state.started(len(offsets), offsets[-1])
    for run in runs:
        by_run.settle(run)
        for o in run:
            by_record.finish(o)
        assert by_run.position == by_record.position
        assert sorted(by_run.done_above) == sorted(by_record.done_above)
    assert by_run.running == by_record.running == len(offsets)  # untouched by settle
    assert by_run.position == offsets[-1] + 1


def test_settling_offsets_not_pending_is_ignored() -> None:
    """Only received, unfinished offsets can be settled: below the position, above the
    last received, or given back by trim_from, a settle changes nothing."""
    state = PartitionOffsets(committed=0)
    for o in range(6):
        state.receive(o)
    state.settle([0])
    state.settle([])
    assert state.trim_from(keep=2) == 3  # 3, 4, 5 given back
    state.settle([0, 3, 4, 7])
    assert state.position == 1 and state.done_above == [] and state.pending_count == 2
    state.settle([2, 1])
    assert state.position == 3 and state.done_above == []


def test_trim_keeps_skipped_offsets_skipped() -> None:
    """A previous owner's finished offset given back by trim_from is skipped again when
    it is fetched again, and stays in the metadata meanwhile."""
    state = PartitionOffsets(committed=100, done_above={103})
    for o in range(100, 106):
        assert state.receive(o) == (o != 103)
    state.started(1, 100)
    assert state.trim_from(1) == 101
    assert 103 in state.done_above
    for o in range(101, 106):
        assert state.receive(o) == (o != 103)
    for o in (100, 101, 102, 104, 105):
        state.finish(o)
    assert state.position == 106 and state.done_above == []


def test_a_done_offset_at_the_position_stays_done_until_it_arrives() -> None:
    """Found by the simulator (seed 316): a previous owner finished 6 and 7; the new owner
    finished everything up to 6 before fetching 7, so its position was 7. The metadata of
    that commit must still call 7 done, and 7 must be skipped when it arrives; it used to
    be forgotten (run again after a later record of its key had taken effect)."""
    state = PartitionOffsets(2, {6, 7})
    for offset in range(2, 7):
        state.receive(offset)
    state.settle([2, 3, 4, 5])
    assert state.position == 8  # 7 is done: the commit may pass it
    assert state.receive(7) is False
    assert state.position == 8


def test_the_position_moves_past_offsets_a_previous_owner_finished() -> None:
    """Everything received is finished and the next offsets were finished by the previous
    owner: the commit may move past them (and its metadata need not list them)."""
    state = PartitionOffsets(2, {3, 4, 6})
    state.receive(2)
    state.settle([2])
    assert state.position == 5
    assert state.done_above == [6]
    assert [state.receive(o) for o in (3, 4, 5, 6)] == [False, False, True, False]
    assert state.position == 5


@pytest.mark.parametrize("seed", range(8))
def test_compacting_the_received_offsets_changes_no_answer(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finished offsets before the oldest unfinished one are dropped from time to time
    (`COMPACT_AFTER`, made small here): position, what is done above it, what is pending,
    trimming and receiving again answer as a plain model of the offsets does."""
    monkeypatch.setattr(offsets_module, "COMPACT_AFTER", 4)
    rnd = random.Random(seed)
    state = PartitionOffsets(committed=0)
    received: list[int] = []  # the model: received and not given back, in order
    finished: set[int] = set()
    skip: set[int] = set()  # finished, then given back by a trim: skipped when they come
    offset = next_offset = 0
    for _ in range(80):
        fetched = []
        for _ in range(rnd.randrange(1, 40)):
            fetched.append(offset)
            offset += rnd.choice((1, 1, 1, 2, 7))  # gaps: compaction, transaction markers
        again = state.receive_many(fetched)
        assert again == skip & set(fetched)
        skip -= again
        received += fetched
        finished |= again
        next_offset = fetched[-1] + 1
        state.started(len(fetched), fetched[-1])
        unfinished = [o for o in received if o not in finished]
        run = sorted(rnd.sample(unfinished, rnd.randrange(len(unfinished) + 1)))
        state.settle([*run, received[0] - 1, offset + 5])  # and two never pending: ignored
        finished.update(run)
        unfinished = [o for o in received if o not in finished]
        position = unfinished[0] if unfinished else next_offset
        assert state.position == position
        assert sorted(state.done_above) == sorted(
            [o for o in received if o in finished and o > position]
            + [o for o in skip if o >= next_offset and o > position]
        )
        assert state.pending_count == len(unfinished)
        assert state.starts_with(unfinished[:3])
        assert not state.starts_with([*unfinished[:1], position + 10**6])
        if rnd.random() < 0.3 and len(unfinished) > 2:  # the buffer gives records back
            cutoff = state.trim_from(keep=2)
            if cutoff is not None:
                skip |= {o for o in received if o >= cutoff and o in finished}
                received = [o for o in received if o < cutoff]
                offset = next_offset = cutoff
