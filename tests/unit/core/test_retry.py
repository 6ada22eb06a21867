from __future__ import annotations

import random

import pytest

from parafka.core.errors import ConfigError
from parafka.core.retry import RetryPolicy


def test_exponential_backoff_with_cap() -> None:
    p = RetryPolicy(max_attempts=10, initial_backoff=0.1, multiplier=2, max_backoff=1, jitter=0)
    assert [p.delay(a) for a in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1, 1]


def test_jitter_stays_within_bounds() -> None:
    p = RetryPolicy(initial_backoff=1, multiplier=1, jitter=0.5)
    rng = random.Random(1)
    delays = [p.delay(1, rng) for _ in range(200)]
    assert all(0.5 <= d <= 1 for d in delays)
    assert len(set(delays)) > 100


def test_should_retry_counts_attempts() -> None:
    p = RetryPolicy(max_attempts=3)
    assert p.should_retry(1) and p.should_retry(2) and not p.should_retry(3)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"jitter": 2}, {"initial_backoff": -1}]
)
def test_invalid_policy_names_the_value(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as err:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(next(iter(kwargs.values()))) in str(err.value)
