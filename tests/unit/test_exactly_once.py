"""Ordered release for exactly-once: a transaction carries exactly the outputs of the
records below the offsets it commits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parafka.exactly_once import OrderedRelease
from parafka.offsets import PartitionOffsets
from parafka.record import Produced, Record


def out(record: Record) -> list[Produced]:
    return [Produced("out", b"%d:%d" % (record.partition, record.offset), None, None)]


def test_outputs_wait_for_older_records_of_their_partition() -> None:
    state = PartitionOffsets()
    for offset in range(3):
        state.receive(offset)
    partitions = {("t", 0): state}
    records = [Record("t", 0, offset) for offset in range(3)]
    release = OrderedRelease()
    release.release(partitions, release.hold([records[2]], out(records[2])))
    release.release(partitions, release.hold([records[1]], out(records[1])))
    assert release.released == [] and state.position == 0
    state.finish(0)  # the oldest record finished without outputs
    assert release.release(partitions, [("t", 0)]) == 2
    assert [o.value for o in release.released] == [b"0:1", b"0:2"]
    assert state.position == 3 and release.held == 0


@given(
    order=st.permutations(list(range(24))),
    with_output=st.lists(st.booleans(), min_size=24, max_size=24),
)
def test_released_outputs_are_exactly_those_below_the_positions(
    order: list[int], with_output: list[bool]
) -> None:
    # 24 records over 3 partitions (8 each), finishing in any order.
    records = [Record("t", i % 3, i // 3) for i in range(24)]
    partitions = {("t", p): PartitionOffsets() for p in range(3)}
    for record in records:
        partitions[("t", record.partition)].receive(record.offset)
    release = OrderedRelease()
    for index in order:
        record = records[index]
        tp = ("t", record.partition)
        if with_output[index]:
            release.release(partitions, release.hold([record], out(record)))
        else:
            partitions[tp].finish(record.offset)
            release.release(partitions, [tp])
        below = {
            b"%d:%d" % (r.partition, r.offset)
            for i, r in enumerate(records)
            if with_output[i] and r.offset < (partitions[("t", r.partition)].position or 0)
        }
        assert {o.value for o in release.released} == below
    assert all(state.position == 8 for state in partitions.values())


def test_a_batch_spanning_partitions_is_released_when_it_heads_both() -> None:
    partitions = {("t", p): PartitionOffsets() for p in range(2)}
    for p in range(2):
        for offset in range(2):
            partitions[("t", p)].receive(offset)
    batch = [Record("t", 0, 1), Record("t", 1, 0)]
    release = OrderedRelease()
    release.release(partitions, release.hold(batch, [Produced("out", b"b", None, None)]))
    assert release.released == []  # t[0]@0 is still unfinished
    partitions[("t", 0)].finish(0)
    release.release(partitions, [("t", 0)])
    assert [o.value for o in release.released] == [b"b"]
    assert partitions[("t", 0)].position == 2 and partitions[("t", 1)].position == 1
