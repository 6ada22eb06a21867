"""The adaptive concurrency limit against a simulated downstream, on virtual time."""

from __future__ import annotations

import pytest

from parafka.core.adaptive import AdaptiveLimit, LimiterTuning
from parafka.testing.sim.downstream import Capacity, Downstream, drive


def settled(limits: list[int], tick: float, start: float, end: float) -> list[int]:
    return limits[int(start / tick) : int(end / tick)]


def test_it_grows_to_the_capacity_and_stays_near_it() -> None:
    limiter = AdaptiveLimit(1, 256, initial=2)
    trace = drive(Downstream(phases=(Capacity(0, 40, 80),)), limiter, 30, tick=0.5)
    late = settled(trace.limits, 0.5, 10, 30)
    # Probes halve the limit for two short windows; the rest of the time it sits just
    # over the capacity, where latency starts to rise.
    assert sorted(late)[len(late) // 2] in range(40, 53), late
    assert trace.throughput(10, 30) >= 0.9 * 40 / 0.05
    assert trace.error_ratio == 0


def test_it_shrinks_when_capacity_drops_and_grows_back_when_it_returns() -> None:
    phases = (Capacity(0, 48, 96), Capacity(20, 12, 24), Capacity(40, 48, 96))
    limiter = AdaptiveLimit(1, 256)
    trace = drive(Downstream(phases=phases), limiter, 60, tick=0.5)
    low = settled(trace.limits, 0.5, 25, 40)
    assert max(low) <= 20, low  # under the rejection threshold (24) after 5 s
    assert trace.throughput(25, 40) >= 0.9 * 12 / 0.05
    assert sorted(settled(trace.limits, 0.5, 50, 60))[10] >= 44
    assert trace.error_ratio <= 0.01


def test_each_failure_takes_a_slot_away_at_most_half_per_window() -> None:
    limiter = AdaptiveLimit(2, 100, initial=50)
    limiter.failed(0.01, records=5)
    assert limiter.limit == 45
    limiter.failed(0.02, records=100)
    assert limiter.limit == 25  # a freed slot refilled and failed again: not counted twice
    now = 0.02
    for _ in range(10):  # every window fails: down to the minimum, never below
        now += 0.2
        limiter.failed(now, records=100)
    assert limiter.limit == 2


def test_it_never_passes_the_maximum() -> None:
    limiter = AdaptiveLimit(1, 20, initial=4)
    trace = drive(Downstream(phases=(Capacity(0, 500, 1000),)), limiter, 20, tick=0.5)
    assert max(trace.limits) == 20


def test_it_does_not_grow_while_the_limit_is_not_used() -> None:
    limiter = AdaptiveLimit(1, 256, initial=32)
    now = 0.0
    for _ in range(200):  # 4 records in flight at most: no demand for 32
        now += 0.05
        limiter.finished(now, 0.05, 4, in_flight=4)
    assert limiter.limit <= 32


def test_rising_latency_shrinks_it_by_the_gradient_at_most_by_half() -> None:
    tuning = LimiterTuning(probe_every=1e9)
    limiter = AdaptiveLimit(1, 256, initial=40, tuning=tuning)
    now = 0.0
    for _ in range(5):  # a baseline of 50 ms
        now += 0.125
        limiter.finished(now, 0.05, 40, in_flight=40)
    before = limiter.limit
    now += 0.125
    limiter.finished(now, 0.5, 40, in_flight=40)  # ten times slower
    assert before * 0.5 <= limiter.limit < before


def test_a_probe_runs_at_half_the_limit_then_gives_it_back() -> None:
    limiter = AdaptiveLimit(1, 256, initial=40, tuning=LimiterTuning(probe_every=1.0))
    now, seen = 0.0, []
    for _ in range(30):
        now += 0.1
        limiter.finished(now, 0.05, limiter.limit, in_flight=1)  # app-limited: no growth
        seen.append(limiter.limit)
    assert 20 in seen and seen[-1] == 40


def test_a_slower_downstream_for_good_is_followed_within_the_horizon() -> None:
    tuning = LimiterTuning(horizon=5.0, probe_every=2.0)
    limiter = AdaptiveLimit(1, 256, initial=8, tuning=tuning)
    fast = Downstream(base=0.05, phases=(Capacity(0, 32, 64),))
    drive(fast, limiter, 10, tick=0.5)
    assert limiter.baseline is not None and limiter.baseline < 0.06
    # The same capacity at twice the latency: after the horizon the baseline doubles and
    # the limit climbs back to the capacity instead of collapsing.
    slow = Downstream(base=0.1, phases=(Capacity(0, 32, 64),))
    trace = drive(slow, limiter, 30, tick=0.5)
    assert limiter.baseline > 0.09
    assert sorted(settled(trace.limits, 0.5, 20, 30))[10] >= 30


@pytest.mark.parametrize(("low", "high"), [(0, 4), (5, 4)])
def test_bad_bounds_are_refused(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(low, high)
