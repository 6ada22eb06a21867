"""Handler time and end-to-end latency, measured per chunk of records, not per record.

Executors call `ChunkTimings.chunk(records, seconds)` once per chunk they ran (only when
metrics are on). Each chunk counts as `len(records)` observations at the chunk's mean
per-record value, so the histograms' counts are records while the cost is per chunk.
End-to-end latency runs from the record's timestamp (producer or broker time, per the
topic's setting) to the end of its chunk, taken as the mean of the chunk's first and
last record.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parafka.core.outcomes import NOT_RUN, OneEach, Outcome
from parafka.core.record import Record


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative bucket counts (upper bound, count of observations <= it), then +Inf."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    total: float


class Histogram:
    """A fixed-bucket histogram taking weighted observations from any thread."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._total = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, count: int = 1) -> None:
        """`count` observations of `value`."""
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[index] += count
            self._total += value * count

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts, total = list(self._counts), self._total
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramSnapshot(tuple(cumulative), running, total)


class ChunkTimings:
    """The handler-time and end-to-end-latency histograms an executor feeds, and the
    queue wait the ledger feeds."""

    def __init__(
        self,
        handler_bounds: Sequence[float],
        latency_bounds: Sequence[float],
        wall: Callable[[], float] = time.time,
        queue_bounds: Sequence[float] = (),
    ) -> None:
        self.handler = Histogram(handler_bounds)
        self.latency = Histogram(latency_bounds)
        # Receipt to start, fed by the ledger once per dispatch round (ledger.py).
        self.queue_wait = Histogram(queue_bounds)
        self._wall = wall

    def chunk(
        self,
        records: Sequence[Record],
        seconds: float,
        outcomes: Sequence[Outcome | None] | OneEach | None = None,
    ) -> None:
        """A chunk of `records` ran in `seconds` (handler time, all records together).
        With `outcomes`, records after a failure that were not run do not count."""
        count = len(records)
        if outcomes is not None and not isinstance(outcomes, OneEach):
            # NOT_RUN marks the records after a failure (executors/base.py).
            count = next((i for i, o in enumerate(outcomes) if o == NOT_RUN), count)
        if not count:
            return
        self.handler.observe(seconds / count, count)
        first = records[0].timestamp or 0  # None, 0 or -1: no timestamp
        last = records[count - 1].timestamp or 0 if count > 1 else first
        if first <= 0 or last <= 0:
            first = last = max(first, last)
            if first <= 0:
                return
        created = (first + last) / 2000.0
        self.latency.observe(max(0.0, self._wall() - created), count)
