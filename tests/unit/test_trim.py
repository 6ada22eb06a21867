"""Giving back records that never started (fair sharing of the buffer)."""

from __future__ import annotations

import pytest

from parafka.offsets import PartitionOffsets
from parafka.record import Record
from parafka.scheduler import ORDERINGS, Scheduler


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_trim_gives_back_only_records_that_never_started(ordering: str) -> None:
    sch = Scheduler(ordering, concurrency=3)  # type: ignore[arg-type]
    po = PartitionOffsets(committed=0)
    records = [Record("t", 0, o, b"k%d" % (o % 4)) for o in range(20)]
    for r in records:
        po.receive(r.offset)
        sch.add(r)
    started = [r for run in sch.take() for r in run]
    po.max_started = max(r.offset for r in started)
    cutoff = po.trim_from(keep=8)
    assert cutoff == 8
    assert sch.trim(("t", 0), cutoff) == 12
    assert po.next_offset == 8 and po.pending_count == 8
    for r in started:
        sch.done(r)
        po.finish(r.offset)
    rest = []
    while runs := sch.take():
        for run in runs:
            for r in run:
                rest.append(r.offset)
                sch.done(r)
                po.finish(r.offset)
    assert sorted(rest + [r.offset for r in started]) == list(range(8))
    assert po.position == 8 and sch.held == 0


def test_trim_never_cuts_below_a_started_record() -> None:
    po = PartitionOffsets(committed=0)
    for o in range(10):
        po.receive(o)
    po.max_started = 6  # unordered mode may have started a high offset
    assert po.trim_from(keep=2) == 7
    assert po.pending_count == 7


def test_nothing_to_trim_under_the_share() -> None:
    po = PartitionOffsets(committed=0)
    for o in range(5):
        po.receive(o)
    assert po.trim_from(keep=5) is None
    assert po.next_offset == 5
