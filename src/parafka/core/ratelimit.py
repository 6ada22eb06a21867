"""Rate limits: a token bucket for a whole stream of events, one bucket per key for many
keys, and the `N/s` syntax. Pure: the clock is injected, and the caller does the waiting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable

_RATE = re.compile(
    r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*"
)
_PER = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}


def parse_rate(text: str | float) -> float:
    """Records per second from `100`, `100/s` or `6000/min`; ValueError naming the value."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        rate = float(text)
    else:
        match = _RATE.fullmatch(str(text))
        if match is None:
            raise ValueError(f"{text!r} is not a rate: use N/s or N/min, e.g. 100/s")
        rate = float(match.group(1)) / _PER[match.group(2)]
    if not rate > 0:
        raise ValueError(f"{text!r} is not a rate above 0: use N/s or N/min, e.g. 100/s")
    return rate


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

    def available(self) -> int:
        """Whole tokens in the bucket now (events that may happen at once)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return max(0, int(self._tokens))

    def spend(self, count: int) -> None:
        """`count` events happened (after `available()` allowed them)."""
        self._tokens -= count

    def set_rate(self, rate: float, burst: float) -> None:
        """A new rate and burst from now on (tokens earned at the old rate are kept)."""
        if rate <= 0:
            raise ValueError(f"rate must be above 0, not {rate}")
        self.available()
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, self.burst)


class KeyRates:
    """At most `rate` events per second per key, in bursts of `burst`, for any number of
    keys: one float per key that was busy lately (the time its next event is due, the
    generic cell rate algorithm), forgotten once it is in the past."""

    def __init__(
        self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0, not {rate}")
        self.rate = rate
        self.clock = clock
        self._interval = 1.0 / rate
        self._slack = (max(1.0, burst) - 1.0) * self._interval
        self._due: dict[Hashable, float] = {}  # key -> when its bucket is empty again
        self._checks = 0

    def take(self, key: Hashable) -> float:
        """0.0 when `key` may have an event now (counted); else the time it may (nothing
        is counted: ask again then)."""
        now = self.clock()
        due = self._due.get(key, now)
        if due < now:
            due = now
        if due - now > self._slack:
            return due - self._slack
        self._due[key] = due + self._interval
        self._checks += 1
        if self._checks >= 4096:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        self._checks = 0
        self._due = {k: d for k, d in self._due.items() if d > now}

    def __len__(self) -> int:
        return len(self._due)
