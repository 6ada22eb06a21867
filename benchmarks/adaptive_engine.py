"""Adaptive concurrency through the whole engine, on the real clock.

benchmarks/adaptive.py measures the limiter on virtual time; this runs `ParallelConsumer`
end to end (control loop, pacer, thread executor) over the in-memory cluster, with the
same downstream model played by the handler in real time: it counts the calls in flight,
sleeps the model's latency, and raises `parafka.Overloaded` for a rejected call (retried
by the retry policy). The capacity changes every PHASE seconds: 32 (rejecting past 48),
16 (past 24), 48 (past 72). `-c auto` runs beside fixed 16, 32 and 48, the best fixed
concurrency of each phase.

Real time on a shared 2-core machine: the numbers move a few percent between runs, and
the latency the limiter sees includes the control loop's own delays.

Usage: python benchmarks/adaptive_engine.py [--phase 12]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
import time
from typing import Any

from parafka import Overloaded, ParallelConsumer, Record
from parafka.core.retry import RetryPolicy
from parafka.testing import InMemoryCluster
from parafka.testing.sim.downstream import Capacity, Downstream, percentile


class LiveDownstream:
    """The model of parafka.testing.sim.downstream, played in real time by a handler."""

    def __init__(self, phase: float) -> None:
        self.model = Downstream(
            phases=(Capacity(0.0, 32, 48), Capacity(phase, 16, 24), Capacity(2 * phase, 48, 72))
        )
        self.lock = threading.Lock()
        self.in_flight = 0
        self.start: float | None = None
        self.calls: list[tuple[float, float, bool]] = []  # (end since start, latency, ok)
        self.rng = random.Random(1)

    def handle(self, record: Record) -> None:
        with self.lock:
            now = time.monotonic()
            if self.start is None:
                self.start = now
            self.in_flight += 1
            latency, ok = self.model.call(now - self.start, self.in_flight, self.rng)
        time.sleep(latency)
        with self.lock:
            self.in_flight -= 1
            assert self.start is not None
            self.calls.append((time.monotonic() - self.start, latency, ok))
        if not ok:
            raise Overloaded("429: over the downstream's limit")


def run(concurrency: int | str, phase: float) -> tuple[LiveDownstream, list[int]]:
    cluster = InMemoryCluster()
    cluster.create_topic("in", 8)
    for i in range(int(phase * 3 * 1100)):
        cluster.produce("in", b"v", key=str(i).encode())
    downstream = LiveDownstream(phase)
    settings: dict[str, Any] = {"concurrency": concurrency}
    if concurrency == "auto":
        settings.update(min_concurrency=1, max_concurrency=128)
    consumer = ParallelConsumer(
        downstream.handle,
        bootstrap_servers="memory",
        group_id="g",
        topics="in",
        ordering="unordered",
        retry=RetryPolicy(max_attempts=1000, initial_backoff=0.02, max_backoff=0.2),
        kafka=cluster,
        **settings,
    )
    limits: list[int] = []
    consumer.start()
    deadline = time.monotonic() + 3 * phase + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        limits.append(consumer.stats().concurrency_limit)
        if downstream.start is not None:
            deadline = min(deadline, downstream.start + 3 * phase)
    consumer.stop(drain=False)
    consumer.join(10)
    return downstream, limits


def phase_numbers(d: LiveDownstream, index: int, phase: float) -> tuple[float, float, float]:
    """(successes/s, p99 ms, error ratio) of one phase: throughput and p99 with its first
    second left out (the time to follow the change), errors over all of it."""
    start, end = index * phase, (index + 1) * phase
    calls = [c for c in d.calls if start <= c[0] < end]
    settled = [latency for at, latency, good in calls if good and at >= start + 1.0]
    errors = sum(1 for _, _, good in calls if not good)
    rate = len(settled) / (end - start - 1.0)
    return rate, percentile(settled, 0.99) * 1000, errors / max(1, len(calls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", type=float, default=12.0, help="seconds per capacity")
    args = parser.parse_args()
    logging.getLogger("parafka").setLevel(logging.ERROR)  # the 429s' retries, by thousands
    phase = args.phase
    results = {}
    for c in ("auto", 16, 32, 48):
        results[c] = run(c, phase)
        print(f"ran concurrency {c}", file=sys.stderr)
    print(f"{'phase':>5} {'capacity':>8} {'run':>6} {'records/s':>10} {'p99 ms':>7} {'errors':>7}")
    met = True
    for index, capacity in enumerate((32, 16, 48)):
        rows = {c: phase_numbers(results[c][0], index, phase) for c in results}
        for c, (rate, p99, errors) in rows.items():
            print(f"{index + 1:>5} {capacity:>8} {c!s:>6} {rate:>10.0f} {p99:>7.1f} {errors:>7.2%}")
        fixed = [c for c in (16, 32, 48) if rows[c][2] <= 0.01]
        most = max(rows[c][0] for c in fixed)  # within 1% of the most, the lowest p99
        best = min((c for c in fixed if rows[c][0] >= 0.99 * most), key=lambda c: rows[c][1])
        rate, p99, errors = rows["auto"]
        ratio, p99_ratio = rate / rows[best][0], p99 / rows[best][1]
        good = ratio >= 0.9 and p99_ratio <= 1.5 and errors <= 0.01
        met = met and good
        print(
            f"      auto against the best fixed ({best}): throughput {ratio:.2f}x, p99 "
            f"{p99_ratio:.2f}x, errors {errors:.2%}: {'met' if good else 'NOT met'}"
        )
    limits = results["auto"][1]
    print(f"auto's limit every 0.25 s: {limits}")
    print(f"\ntargets {'met' if met else 'NOT met'} in every phase")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
