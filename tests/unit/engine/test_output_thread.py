"""The output thread: which records a failed output fails (a Paired item's one by one),
its acknowledgement time on a virtual clock, and what the control loop does with it: in
partition order the executor's chunks outlast it."""

from __future__ import annotations

from typing import Any

import pytest

from parafka import Output, ParallelConsumer, Record
from parafka.core.outcomes import Paired
from parafka.core.scheduler import Ordering
from parafka.engine.outputs import OutputThread
from parafka.executors.base import Completions
from parafka.testing import InMemoryCluster
from parafka.testing.memory import VirtualClock


def test_a_failed_output_fails_its_own_record_in_a_paired_item_and_all_in_a_shared_one() -> None:
    cluster = InMemoryCluster()
    cluster.create_topic("out", 1)
    completions = Completions()
    config = {"message.max.bytes": 100}
    outputs = OutputThread(cluster, "memory", config, completions, threaded=False)
    failing = {b"a1", b"b0"}  # each fails its first delivery

    def fails(_topic: str, _key: bytes | None, value: bytes | None) -> bool:
        if value in failing:
            failing.discard(value)
            return True
        return False

    cluster.faults.fail_deliveries_where(fails)
    a = [Record("in", 0, offset) for offset in range(4)]
    b = [Record("in", 1, offset) for offset in range(2)]
    values = [b"a0", b"a1", b"x" * 200, b"a3"]  # a[2]'s is refused: over message.max.bytes
    shared = [("out", b"b0", None, None), ("out", b"b1", None, None)]
    outputs.send([Paired(a, [("out", v, None, None) for v in values]), (b, shared)])
    assert outputs.pump()
    [result] = completions.drain()
    assert list(result.records) == [*a, *b]
    assert result.outcomes is not None
    failed = [outcome is not None and outcome[1] is not None for outcome in result.outcomes]
    # a1 and a2 fail on their own; b0 fails both records of the batch it belongs to
    assert failed == [False, True, True, False, True, True]


def test_the_wait_for_acknowledgements_is_measured_from_the_hand_over() -> None:
    cluster, clock = InMemoryCluster(), VirtualClock()
    cluster.create_topic("out", 1)
    outputs = OutputThread(cluster, "memory", {}, Completions(), threaded=False, clock=clock)
    record = Record("in", 0, 0)
    outputs.send([([record], [("out", b"v", None, None)])])
    clock.advance(0.010)
    outputs.send([([record], [("out", b"w", None, None)])])  # same epoch: not since
    clock.advance(0.010)
    assert outputs.pump() and outputs.ack_seconds == pytest.approx(0.2 * 0.020)
    outputs.send([([record], [("out", b"x", None, None)])])
    clock.advance(0.005)
    assert outputs.pump()
    assert outputs.ack_seconds == pytest.approx(0.004 + 0.2 * (0.005 - 0.004))
    assert not outputs.pump() and outputs.ack_seconds == pytest.approx(0.0042)  # no epoch


@pytest.mark.parametrize("ordering", ["partition", "key", "unordered"])
def test_only_partition_order_sizes_its_runs_by_the_acknowledgements(ordering: Ordering) -> None:
    cluster = InMemoryCluster()
    cluster.create_topic("in", 2)
    cluster.create_topic("out", 2)
    for i in range(2_000):
        cluster.produce("in", b"x", key=str(i % 10).encode())

    def handle(record: Record) -> Output:
        return Output(b"y", key=record.key)

    pc = ParallelConsumer(
        handle,
        bootstrap_servers="memory",
        group_id="g",
        topics=["in"],
        output_topic="out",
        ordering=ordering,
        kafka=cluster,
    )
    stats = pc.run(until_idle=0.3)
    assert stats.processed == 2_000
    executor: Any = pc._loop.executor  # type: ignore[union-attr]
    assert (executor.ack_wait > 0) == (ordering == "partition")
