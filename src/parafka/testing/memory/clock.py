"""A virtual clock: time that moves only when a test says so.

The in-memory cluster reads no real time; record timestamps, delivery delays and poll
timeouts all come from this clock, so a run is the same every time it is repeated.
"""

from __future__ import annotations


class VirtualClock:
    """Seconds since `start`, advanced by hand. Calling the clock returns `now()`, so it
    can be passed wherever a `Callable[[], float]` clock is expected."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (not backwards: a clock that goes back would
        make due times and timeouts meaningless); returns the new time."""
        if seconds < 0:
            raise ValueError(f"a virtual clock only moves forward; got advance({seconds})")
        self._now += seconds
        return self._now

    def millis(self) -> int:
        """Now in whole milliseconds (Kafka's timestamp unit)."""
        return int(self._now * 1000)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now})"
