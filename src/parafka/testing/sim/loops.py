"""Consumers stepping in turn over one in-memory cluster, on a virtual clock. Pure.

The real control loop and ledger, with the simulator's executor: chunks run as soon as
they are handed over, and time moves only by what a consumer would wait (its consume()
timeout, its wait for completions) plus a millisecond per round. For measuring what
depends on time alone, such as rates (tests/unit/engine/test_rates.py, benchmarks/rates.py):
the result is the engine's, not the machine's load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parafka.core.record import Record
from parafka.engine.control import ControlLoop
from parafka.engine.settings import Settings
from parafka.executors.base import Work
from parafka.testing.memory import InMemoryCluster, VirtualClock
from parafka.testing.sim.executor import SimCompletions, SimExecutor

TOPIC = "in"


class World:
    """Consumers stepping in turn over one cluster; chunks run as soon as they are handed
    over, and the clock moves by what a consumer would wait."""

    def __init__(self, partitions: int) -> None:
        self.clock = VirtualClock()
        self.cluster = InMemoryCluster(self.clock, on_idle=self._idle)
        self.cluster.create_topic(TOPIC, partitions)
        self.loops: list[tuple[ControlLoop, SimExecutor]] = []
        self.starts: list[list[tuple[float, bytes | None]]] = []

    def _idle(self, timeout: float) -> None:
        self.clock.advance(max(timeout, 0.001))

    def _waiting(self, executor: SimExecutor, timeout: float) -> None:
        while executor.pending:
            executor.run(0)
        self.clock.advance(max(timeout, 0.001))

    def join(self, **overrides: Any) -> int:
        """A new consumer in group "g" with these settings; returns its number."""
        number = len(self.loops)
        starts: list[tuple[float, bytes | None]] = []
        self.starts.append(starts)

        def handle(record: Record) -> None:
            starts.append((self.clock(), record.key))

        executor = SimExecutor(capacity=64, run_length=1)
        settings = Settings(
            "memory", "g", (TOPIC,), ordering="key", commit_interval=0.5, **overrides
        )
        loop = virtual_loop(
            settings,
            Work(handle),
            executor,
            self.cluster,
            self.clock,
            lambda timeout: self._waiting(executor, timeout),
        )
        self.loops.append((loop, executor))
        return number

    def run(self, seconds: float) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            for loop, executor in self.loops:
                loop.step()
                while executor.pending:
                    executor.run(0)
            self.clock.advance(0.001)

    def produce(self, count: int, key: Callable[[int], bytes]) -> None:
        for i in range(count):
            self.cluster.produce(TOPIC, b"v", key=key(i))


def virtual_loop(
    settings: Settings,
    work: Work,
    executor: SimExecutor,
    cluster: InMemoryCluster,
    clock: VirtualClock,
    waiting: Callable[[float], None] | None = None,
) -> ControlLoop:
    """A control loop over `cluster` on the virtual `clock`, with the simulator's executor
    and no output thread, opened. Its waits for completions call `waiting(timeout)`; by
    default the clock moves by the timeout (a millisecond at least)."""
    if waiting is None:

        def waiting(timeout: float) -> None:
            clock.advance(max(timeout, 0.001))

    loop = ControlLoop(
        settings,
        work,
        executor,
        clock=clock,
        kafka=cluster,
        completions=SimCompletions(waiting),
        threaded_outputs=False,
        wall=clock,
    )
    loop.open()
    return loop


def rate_between(times: list[float], start: float, end: float) -> float:
    """Events per second among `times` in [start, end)."""
    return sum(1 for t in times if start <= t < end) / (end - start)
