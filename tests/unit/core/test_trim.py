"""Giving back records that never started (fair sharing of the buffer)."""

from __future__ import annotations

import pytest

from parafka.core.ledger import Ledger
from parafka.core.offsets import PartitionOffsets
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import ORDERINGS
from tests.unit.entries import message


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_trim_gives_back_only_records_that_never_started(ordering: str) -> None:
    ledger = Ledger(ordering, concurrency=3, retry=RetryPolicy())  # type: ignore[arg-type]
    tp = ("t", 0)
    po = ledger.assign(tp, 0).offsets
    ledger.accept([message("t", 0, o, b"k%d" % (o % 4)) for o in range(20)])
    started = ledger.take()
    assert ledger.trim(tp, keep=8) == 12
    assert po.next_offset == 8 and po.pending_count == 8 and ledger.held == 8
    for run in started:
        ledger.completed(run, None)
    rest = [e.offset for run in started for e in run]
    while runs := ledger.take():
        for run in runs:
            rest.extend(e.offset for e in run)
            ledger.completed(run, None)
    assert sorted(rest) == list(range(8))
    assert po.position == 8 and ledger.held == 0 and ledger.queued == 0


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
