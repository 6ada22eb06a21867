"""A token bucket: at most `rate` events per second on average, in bursts of at most
`burst`. Pure: the clock is injected, and the caller does the waiting."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Hands out one token per event; `reserve()` says how long to wait before using it.

    Reserving always succeeds and may leave the bucket in debt, so waiting the returned
    delay and then acting keeps the long-run rate exact with no second check. The bucket
    starts full: the first `burst` events go at once.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0, not {rate}")
        # Default: a tenth of a second's worth, so the producer can still batch a little.
        self.burst = max(1.0, rate / 10) if burst is None else burst
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        self.rate = rate
        self.clock = clock
        self._tokens = self.burst
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before the event may happen (≥ 0)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
