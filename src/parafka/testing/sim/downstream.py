"""A simulated downstream with a capacity, and a closed loop that drives it. Pure.

The model of a database or an HTTP API called once per record: a call started with `k`
calls in flight (itself included) takes `base * jitter` seconds while `k <= capacity`,
and `base * jitter * k / capacity` past it (the calls share the capacity: Little's law);
past `reject_above` in flight it fails at once (a 429). Capacity can change over time.

`drive()` runs a consumer with an endless backlog against it on virtual time: it starts
calls while fewer than the limit are in flight (a fixed number, or an `AdaptiveLimit`
told of every outcome the way the control loop tells it) and samples every `tick`
seconds. Used by the adaptive limiter's tests and by benchmarks/adaptive.py.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from parafka.core.adaptive import AdaptiveLimit


@dataclass(frozen=True)
class Capacity:
    """From `at` seconds on: `capacity` calls at full speed, rejections past `reject_above`."""

    at: float
    capacity: int
    reject_above: int


@dataclass
class Downstream:
    base: float = 0.05  # seconds per call, unloaded
    jitter: float = 0.1  # sigma of the log-normal noise on every call
    phases: tuple[Capacity, ...] = (Capacity(0.0, 32, 64),)

    def phase(self, now: float) -> Capacity:
        current = self.phases[0]
        for phase in self.phases:
            if phase.at <= now:
                current = phase
        return current

    def call(self, now: float, in_flight: int, rng: random.Random) -> tuple[float, bool]:
        """(seconds, ok) of a call started now with `in_flight` calls (itself included)."""
        phase = self.phase(now)
        if in_flight > phase.reject_above:
            return self.base, False  # a 429 takes a round trip too
        noise = math.exp(rng.gauss(0.0, self.jitter))
        return self.base * noise * max(1.0, in_flight / phase.capacity), True


@dataclass
class Trace:
    """What a run did: per tick, the limit, the records finished and their latencies."""

    tick: float
    limits: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # successes per tick
    errors: list[int] = field(default_factory=list)  # rejections per tick
    latencies: list[float] = field(default_factory=list)  # every success, in order
    p99s: list[float] = field(default_factory=list)  # per tick (0 when none)

    @property
    def seconds(self) -> float:
        return self.tick * len(self.done)

    def throughput(self, start: float = 0.0, end: float | None = None) -> float:
        """Successes per second between `start` and `end` (seconds)."""
        first = int(start / self.tick)
        last = len(self.done) if end is None else int(end / self.tick)
        ticks = max(1, last - first)
        return sum(self.done[first:last]) / (ticks * self.tick)

    @property
    def error_ratio(self) -> float:
        total = sum(self.done) + sum(self.errors)
        return sum(self.errors) / total if total else 0.0

    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drive(
    downstream: Downstream,
    limit: int | AdaptiveLimit,
    seconds: float,
    seed: int = 1,
    tick: float = 0.5,
    on_tick: Callable[[float], None] | None = None,
) -> Trace:
    """Run an endless backlog through `downstream` for `seconds` of virtual time."""
    rng = random.Random(seed)
    trace = Trace(tick)
    ends: list[tuple[float, int, float, bool]] = []  # (end, seq, latency, ok)
    now, seq, next_tick = 0.0, 0, tick
    tick_done, tick_errors = 0, 0
    tick_latencies: list[float] = []
    adaptive = limit if isinstance(limit, AdaptiveLimit) else None

    fixed = limit if isinstance(limit, int) else 0

    def current() -> int:
        return adaptive.limit if adaptive is not None else fixed

    while now < seconds:
        while len(ends) < current():
            latency, ok = downstream.call(now, len(ends) + 1, rng)
            seq += 1
            heapq.heappush(ends, (now + latency, seq, latency, ok))
        end, _, latency, ok = heapq.heappop(ends)
        while next_tick <= end and next_tick <= seconds:
            trace.limits.append(current())
            trace.done.append(tick_done)
            trace.errors.append(tick_errors)
            trace.p99s.append(percentile(tick_latencies, 0.99))
            tick_done, tick_errors = 0, 0
            tick_latencies = []
            if on_tick is not None:
                on_tick(next_tick)
            next_tick += tick
        now = end
        if ok:
            tick_done += 1
            tick_latencies.append(latency)
            trace.latencies.append(latency)
            if adaptive is not None:
                adaptive.finished(now, latency, 1, len(ends) + 1)
        else:
            tick_errors += 1
            if adaptive is not None:
                adaptive.failed(now)
    return trace
