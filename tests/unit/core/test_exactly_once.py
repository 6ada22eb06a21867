"""Ordered release for exactly-once: a transaction carries exactly the outputs of the
records below the offsets it commits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parafka.core.entry import Entry
from parafka.core.exactly_once import OrderedRelease
from parafka.core.offsets import PartitionOffsets
from parafka.core.record import Produced, Record
from tests.unit.entries import wrap


def out(entry: Entry) -> list[Produced]:
    record = entry.record
    return [("out", b"%d:%d" % (record.partition, record.offset), None, None)]


def test_outputs_wait_for_older_records_of_their_partition() -> None:
    state = PartitionOffsets()
    for offset in range(3):
        state.receive(offset)
    partitions = {("t", 0): state}
    records = wrap(Record("t", 0, offset) for offset in range(3))
    release = OrderedRelease()
    release.release(partitions, release.hold([records[2]], out(records[2])))
    release.release(partitions, release.hold([records[1]], out(records[1])))
    assert release.released == [] and state.position == 0
    state.finish(0)  # the oldest record finished without outputs
    assert release.release(partitions, [("t", 0)]) == records[1:]
    assert [value for _, value, _, _ in release.released] == [b"0:1", b"0:2"]
    assert state.position == 3 and release.held == 0


@given(
    order=st.permutations(list(range(24))),
    with_output=st.lists(st.booleans(), min_size=24, max_size=24),
)
def test_released_outputs_are_exactly_those_below_the_positions(
    order: list[int], with_output: list[bool]
) -> None:
    # 24 records over 3 partitions (8 each), finishing in any order.
    records = wrap(Record("t", i % 3, i // 3) for i in range(24))
    partitions = {("t", p): PartitionOffsets() for p in range(3)}
    for entry in records:
        partitions[entry.tp].receive(entry.offset)
    release = OrderedRelease()
    for index in order:
        entry = records[index]
        tp = entry.tp
        if with_output[index]:
            release.release(partitions, release.hold([entry], out(entry)))
        else:
            partitions[tp].finish(entry.offset)
            release.release(partitions, [tp])
        below = {
            b"%d:%d" % (e.tp[1], e.offset)
            for i, e in enumerate(records)
            if with_output[i] and e.offset < (partitions[e.tp].position or 0)
        }
        assert {value for _, value, _, _ in release.released} == below
        assert release.held == sum(
            1
            for i, e in enumerate(records)
            if with_output[i] and order.index(i) <= order.index(index)
        ) - len(below)
    assert all(state.position == 8 for state in partitions.values())


def test_a_batch_spanning_partitions_is_released_when_it_heads_both() -> None:
    partitions = {("t", p): PartitionOffsets() for p in range(2)}
    for p in range(2):
        for offset in range(2):
            partitions[("t", p)].receive(offset)
    batch = wrap([Record("t", 0, 1), Record("t", 1, 0)])
    release = OrderedRelease()
    release.release(partitions, release.hold(batch, [("out", b"b", None, None)]))
    assert release.released == []  # t[0]@0 is still unfinished
    partitions[("t", 0)].finish(0)
    assert release.release(partitions, [("t", 0)]) == batch
    assert [value for _, value, _, _ in release.released] == [b"b"]
    assert partitions[("t", 0)].position == 2 and partitions[("t", 1)].position == 1


def test_forget_returns_each_dropped_entry_once_and_clears_a_spanning_batch() -> None:
    partitions = {("t", p): PartitionOffsets() for p in range(2)}
    for p in range(2):
        for offset in range(2):
            partitions[("t", p)].receive(offset)
    batch = wrap([Record("t", 0, 1), Record("t", 1, 1)])
    alone = wrap([Record("t", 1, 0)])
    release = OrderedRelease()
    release.hold(batch, [("out", b"b", None, None)])
    release.hold(alone, [("out", b"a", None, None)])
    assert release.held == 3
    dropped = release.forget([("t", 0)])
    assert dropped == batch  # the batch's t[1] entry goes with it, once
    assert release.held == 1
    assert release.forget() == alone and release.held == 0
