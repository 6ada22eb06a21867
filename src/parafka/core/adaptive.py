"""Adaptive concurrency: a limit on records in flight that follows the downstream. Pure.

In the family of TCP Vegas and Netflix's gradient limiters (concurrency-limits): a
downstream that has spare capacity answers as fast as with one request in flight; past
its capacity, requests queue and latency rises in proportion (Little's law). So the
limiter compares the latency it measures now with the latency the downstream gives
when not loaded (its *baseline*) and steers to keep their ratio near `1 + slack`:

- per *window* (at least `window` seconds, one baseline latency and `samples` records,
  so that its mean is not noise), the mean latency of the records that succeeded is
  compared with the baseline;
- ratio under `1 + slack` and the limit actually used (in flight at least half of it):
  grow by about sqrt(limit) (fast from far below, gentle near the top);
- ratio above `1 + slack`: shrink towards `limit * (1 + slack) / ratio` (the gradient),
  halfway per window, never below half;
- a failed record (any exception, and `parafka.Overloaded` for a 429/503 answer): its
  slot is taken away at once (the limit drops by one per failure, so a limit that went
  past what the downstream accepts comes back after about one failure per excess slot;
  at most half of it per window, since a freed slot may be refilled, and fail, before
  the excess is gone), and the window it fell in does not grow the limit.

The baseline is the lowest window mean seen over the last `horizon` seconds. A limit held
just over capacity never sees the unloaded latency again, so every `probe_every` seconds
the limiter *probes*: two windows at half the limit, which drain the queue and measure
the unloaded latency afresh (cost: about 1% of throughput). A downstream whose own
latency rises for good is followed within `horizon`.

The caller reports each finished chunk (`finished`) and each failure (`failed`) with its
clock's time, and reads `limit`. No I/O, no threads: the control thread owns it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LimiterTuning:
    """The limiter's constants (docs/features.md says what each one changes)."""

    slack: float = 0.1  # latency allowed over the baseline before shrinking
    window: float = 0.1  # seconds of samples per decision, at least
    samples: int = 8  # records per decision, at least
    horizon: float = 30.0  # seconds the baseline remembers its lowest window
    probe_every: float = 10.0  # seconds between two baseline probes


class AdaptiveLimit:
    """The current concurrency limit, moved by measured latency and failures."""

    def __init__(
        self,
        minimum: int,
        maximum: int,
        initial: int | None = None,
        now: float = 0.0,
        tuning: LimiterTuning | None = None,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        self.minimum, self.maximum = minimum, maximum
        self.tuning = tuning or LimiterTuning()
        start = initial if initial is not None else min(maximum, max(minimum, 16))
        self._limit = float(min(maximum, max(minimum, start)))
        self.baseline: float | None = None  # seconds: the unloaded latency, as estimated
        self.last_ratio = 1.0  # the latest window's mean latency over the baseline
        self._lows: deque[tuple[float, float]] = deque()  # (time, window mean), rising means
        self._start = now
        self._total = 0.0  # seconds of latency summed over the window
        self._count = 0  # records that succeeded in the window
        self._failures = 0
        self._busiest = 0  # most records in flight seen in the window
        self._floor = max(float(minimum), self._limit / 2)  # failures cut no lower per window
        self._next_probe = now + self.tuning.probe_every
        self._probing = 0  # windows of the current probe still to run

    @property
    def limit(self) -> int:
        """Records that may be in flight now."""
        if self._probing:
            return max(self.minimum, int(self._limit / 2))
        return int(self._limit)

    def finished(self, now: float, latency: float, records: int, in_flight: int) -> None:
        """`records` records succeeded, each having taken `latency` seconds, with
        `in_flight` records in flight (before they left)."""
        self._total += latency * records
        self._count += records
        self._busiest = max(self._busiest, in_flight)
        self._maybe_decide(now)

    def failed(self, now: float, records: int = 1) -> None:
        """`records` records failed (an exception, or `Overloaded`)."""
        self._failures += records
        self._limit = max(self._floor, self._limit - records)
        self._maybe_decide(now)

    def _maybe_decide(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed < self.tuning.window or (self._count == 0 and self._failures == 0):
            return
        if not self._failures and (
            self._count < self.tuning.samples
            or (self.baseline is not None and elapsed < self.baseline)
        ):
            return  # too few samples for a mean to mean anything: wait for more
        self._decide(now)
        self._start, self._total, self._count, self._failures, self._busiest = now, 0.0, 0, 0, 0
        self._floor = max(float(self.minimum), self._limit / 2)

    def _decide(self, now: float) -> None:
        t = self.tuning
        mean = self._total / self._count if self._count else None
        if mean is not None:
            self._remember(now, mean)
        probing = self._probing > 0
        if probing:
            self._probing -= 1
        elif now >= self._next_probe:
            self._probing = 2  # this window's decision stands; the next two run at half
            self._next_probe = now + t.probe_every
        if self._failures:
            return  # failed() took their slots away already
        if mean is None or self.baseline is None or probing:
            return
        ratio = mean / self.baseline if self.baseline > 0 else 1.0
        self.last_ratio = ratio
        if ratio <= 1 + t.slack:
            if self._busiest * 2 >= self._limit:  # not held back by want of records
                self._limit = min(self.maximum, self._limit + max(1.0, math.sqrt(self._limit)))
            return
        target = self._limit * max(0.5, (1 + t.slack) / ratio)
        self._limit = max(float(self.minimum), (self._limit + target) / 2)

    def _remember(self, now: float, mean: float) -> None:
        """Keep the lowest window mean of the horizon (a monotonic queue of minima)."""
        lows = self._lows
        while lows and lows[-1][1] >= mean:
            lows.pop()
        lows.append((now, mean))
        while lows[0][0] < now - self.tuning.horizon:
            lows.popleft()
        self.baseline = lows[0][1]
