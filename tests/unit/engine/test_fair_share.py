"""Flow control in the control loop, over the in-memory cluster (flow.py): when fair share
pauses partitions for a starving one, with handlers on worker threads or on the loop's own
thread; and the acknowledgement wait the backlog covers."""

from __future__ import annotations

import pytest

from parafka import Output, Record
from parafka.core.flow import FlowControl
from parafka.core.scheduler import Ordering
from parafka.engine.settings import Settings
from parafka.executors.base import Work
from parafka.testing import InMemoryCluster
from parafka.testing.memory import VirtualClock
from parafka.testing.sim.executor import SimExecutor
from parafka.testing.sim.loops import virtual_loop


@pytest.mark.parametrize("here", [True, False])
def test_a_waiting_loop_gives_a_starving_partition_its_share(here: bool) -> None:
    """Partition 0's records fill the buffer (10) at the first fetch, and its first run
    does not come back; partition 1 was never fetched, so it may have records and holds
    none. The loop has nothing to run and waits: fair share pauses partition 0, gives
    back its records beyond its share, and partition 1's records run. With handlers on
    the loop's own thread (`runs_here`) this needs the loop's waits to be counted: its
    free slots say nothing there."""
    clock = VirtualClock()
    cluster = InMemoryCluster(clock)
    cluster.create_topic("in", 2)
    for i in range(40):
        cluster.produce("in", b"%d" % i, key=b"k", partition=0)
    for i in range(5):
        cluster.produce("in", b"%d" % i, key=b"k", partition=1)
    handled: list[tuple[int, int]] = []

    def handle(record: Record) -> None:
        handled.append((record.partition, record.offset))

    executor = SimExecutor(capacity=4, run_length=1)
    executor.here = here
    settings = Settings("memory", "g", ("in",), ordering="partition", max_buffered=10)
    loop = virtual_loop(settings, Work(handle), executor, cluster, clock)
    end = clock() + 3.0
    for _ in range(100_000):  # a loop with nothing to do waits, and the clock moves
        if clock() >= end:
            break
        loop.step()
        while len(executor.pending) > 1:  # every chunk but partition 0's first run
            executor.run(1)
    assert clock() >= end, "the loop never waited"
    (stuck,) = executor.pending
    assert [(e.partition, e.offset) for e in stuck.entries] == [(0, 0)]
    assert handled == [(1, offset) for offset in range(5)]
    loop.close()


class _Following(FlowControl):
    """Flow control that notes what the loop tells `follow`."""

    def __init__(self, flow: FlowControl) -> None:
        super().__init__(flow.limit, flow.stall_after, flow.starve_after, flow.follows_rate)
        self.acks: list[float] = []

    def follow(self, rate: float, ack_seconds: float = 0.0) -> bool:
        self.acks.append(ack_seconds)
        return super().follow(rate, ack_seconds)


@pytest.mark.parametrize("ordering", ["key", "partition", "unordered"])
def test_in_ordered_modes_the_backlog_covers_the_wait_for_acknowledgements(
    ordering: Ordering,
) -> None:
    """A shard's next records cannot start while its outputs await their acknowledgement
    (key and partition order): the loop tells flow control how long that wait is, so
    the backlog holds those records on top of the startable ones (flow.py). Unordered,
    nothing waits for an acknowledgement to start."""
    records = 20_000
    clock = VirtualClock()
    cluster = InMemoryCluster(clock)
    cluster.create_topic("in", 2)
    cluster.create_topic("out", 2)
    for i in range(records):
        cluster.produce("in", b"%d" % i, key=b"%d" % (i % 50), partition=i % 2)
    executor = SimExecutor(capacity=64, run_length=8)
    settings = Settings("memory", "g", ("in",), ordering=ordering, output_topic="out")
    work = Work(lambda r: Output(r.value), default_topic="out", ordering=ordering)
    loop = virtual_loop(settings, work, executor, cluster, clock)
    flow = loop.flow = _Following(loop.flow)
    for _ in range(20_000):
        loop.step()
        while executor.pending:
            executor.run(0)
        clock.advance(0.008)  # the outputs' round trip to the broker
        loop.outputs.pump(0.0)
        if loop.stats().processed == records:
            break
    loop.close()
    assert loop.stats().processed == records
    assert loop.outputs.ack_seconds > 0.005 and len(flow.acks) > 3
    if ordering == "unordered":
        assert set(flow.acks) == {0.0}
    else:
        assert flow.acks[-1] == pytest.approx(loop.outputs.ack_seconds, rel=0.5)
        assert min(flow.acks[1:]) > 0.005
