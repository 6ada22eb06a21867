"""Rate limits: the rate achieved against the rate set, with 1 and 3 instances.

Two clocks, each run beside the other:

- **virtual** (parafka.testing.sim.loops): the real control loop and ledger over the in-memory
  cluster, the clock moved only by what the loops wait. Exact and repeatable, whatever
  the machine is doing; it shows the engine's pacing, not the machine's.
- **real**: `ParallelConsumer`s over the in-memory cluster in this process, on threads
  and the real clock (the loop wakes late on a busy machine; burst allowances absorb
  it). The rate is measured over the last 5 s of an 8-s run (1 s cut at each end).

Each case: the set rate, the achieved one (records started per second, in sum over the
instances), their ratio, and the per-instance split. Target (issue 15): within 5%.

Usage: python benchmarks/rates.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from parafka import ParallelConsumer, Record
from parafka.testing import InMemoryCluster
from parafka.testing.sim.loops import World, rate_between

PARTITIONS = 6


def virtual(instances: int, seconds: float, hot_keys: bool = False, **rates: Any) -> list[float]:
    """Per-instance achieved rates (records started per second) on virtual time."""
    world = World(PARTITIONS)
    if hot_keys:  # 10 keys, each far more records than its rate lets through
        world.produce(20000, lambda i: f"hot{i % 10}".encode())
    else:
        world.produce(60000, lambda i: str(i).encode())
    for _ in range(instances):
        world.join(**rates)
    world.run(2.0)  # joins and the rebalance
    start = world.clock()
    world.run(seconds)
    return [rate_between([t for t, _ in s], start, start + seconds) for s in world.starts]


def real(instances: int, seconds: float, **rates: Any) -> list[float]:
    """Per-instance achieved rates on the real clock, threads, the in-memory cluster."""
    cluster = InMemoryCluster()
    cluster.create_topic("in", PARTITIONS)
    for i in range(60000):
        cluster.produce("in", b"v", key=str(i).encode())
    lock = threading.Lock()
    starts: list[list[float]] = [[] for _ in range(instances)]

    def handler(n: int) -> Callable[[Record], None]:
        def handle(record: Record) -> None:
            with lock:
                starts[n].append(time.monotonic())

        return handle

    consumers = [
        ParallelConsumer(
            handler(n),
            bootstrap_servers="memory",
            group_id="g",
            topics="in",
            kafka=cluster,
            **rates,
        )
        for n in range(instances)
    ]
    for consumer in consumers:
        consumer.start()
    time.sleep(seconds)
    end = time.monotonic()
    for consumer in consumers:
        consumer.stop()
    for consumer in consumers:
        consumer.join()
    window = (end - seconds + 2.0, end - 1.0)
    return [rate_between(s, *window) for s in starts]


def report(clock: str, label: str, instances: int, set_rate: float, each: list[float]) -> bool:
    total = sum(each)
    ratio = total / set_rate
    split = ", ".join(f"{r:.1f}" for r in each)
    ok = abs(ratio - 1) <= 0.05
    print(
        f"{clock:>7} {label:<32} {instances:>3} {set_rate:>8.1f} {total:>9.1f} "
        f"{ratio:>6.3f} {'ok' if ok else 'OFF':>4}  [{split}]"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    args = parser.parse_args()
    s = args.seconds
    print(f"{'clock':>7} {'case':<32} {'n':>3} {'set/s':>8} {'got/s':>9} {'ratio':>6}")
    ok = True
    for n in (1, 3):
        ok &= report("virtual", "--rate 100/s (each instance)", n, 100 * n, virtual(n, s, rate=100))
        ok &= report("virtual", "--group-rate 150/s", n, 150, virtual(n, s, group_rate=150))
        # 10 hot keys at 5/s each: 50/s in all, whatever the instances.
        got = virtual(n, s, hot_keys=True, key_rate=5)
        ok &= report("virtual", "--key-rate 5/s, 10 busy keys", n, 50, got)
    for n in (1, 3):
        ok &= report("real", "--rate 100/s (each instance)", n, 100 * n, real(n, s, rate=100))
        ok &= report("real", "--group-rate 150/s", n, 150, real(n, s, group_rate=150))
    print(f"\nwithin 5% of the set rate: {'every case' if ok else 'NOT every case'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
