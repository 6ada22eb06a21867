"""TokenBucket with a fake clock: the caller waits what `reserve()` says, nothing more."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parafka.core.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(bucket: TokenBucket, clock: FakeClock, events: int) -> list[float]:
    """Send `events` as fast as the bucket allows; return the time each one went."""
    times = []
    for _ in range(events):
        clock.now += bucket.reserve()
        times.append(clock.now)
    return times


def test_the_first_burst_goes_at_once_then_one_per_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    times = run(bucket, clock, 6)
    assert times[:3] == [100.0, 100.0, 100.0]
    assert times[3:] == pytest.approx([100.1, 100.2, 100.3])


def test_long_run_rate_is_exact() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=250, clock=clock)  # default burst: 25
    times = run(bucket, clock, 10_025)
    assert times[-1] - times[0] == pytest.approx(10_000 / 250)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    run(bucket, clock, 2)
    clock.now += 3600  # an hour idle earns two tokens, not 3600
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_a_slow_caller_is_never_made_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=1, clock=clock)
    for _ in range(20):
        assert bucket.reserve() == 0.0
        clock.now += 0.25  # slower than 5/s


def test_fractional_rates() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=0.5, clock=clock)  # default burst: 1
    assert run(bucket, clock, 3) == pytest.approx([100.0, 102.0, 104.0])


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (10, 0.5)])
def test_bad_settings(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


@given(
    rate=st.floats(min_value=0.1, max_value=10_000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_no_window_holds_more_than_rate_times_length_plus_burst(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    times = []
    for gap in gaps:  # the caller also pauses by itself between events
        clock.now += gap
        clock.now += bucket.reserve()
        times.append(clock.now)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= (times[j] - start) * rate + burst + 1e-6
