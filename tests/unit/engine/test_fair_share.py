"""Fair share in the control loop, over the in-memory cluster: when it pauses partitions
for a starving one (flow.py), with handlers on worker threads or on the loop's own thread."""

from __future__ import annotations

import pytest

from parafka import Record
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
