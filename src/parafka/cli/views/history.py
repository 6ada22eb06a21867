"""A short history of stats snapshots, and the figures the views derive from it. Pure.

The lag parts (not fetched / queued / in flight / done but not committed) and the age of a
partition's oldest unfinished record are read with `getattr`: snapshots that do not carry
them yet show the plain lag instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from parafka.core.stats import PartitionStats, Stats

LAG_PARTS = ("not_fetched", "queued", "in_flight", "done_not_committed")


@dataclass(frozen=True, slots=True)
class Sample:
    """One snapshot: `at` (monotonic seconds) times rates, `wall` (epoch seconds) is shown."""

    seq: int
    at: float
    wall: float
    stats: Stats
    rate: float  # records processed per second over the history's rate window


class History:
    """The snapshots of the last `keep` seconds, oldest first, each with its records/s.

    The rate is measured over at least `window` seconds of samples: the stats are refreshed
    4 times a second, so a shorter span would jitter between two refreshes.
    """

    def __init__(self, keep: float, window: float = 2.0) -> None:
        self.keep = keep
        self.window = window
        self._samples: deque[Sample] = deque()
        self._seq = 0

    def add(self, stats: Stats, at: float, wall: float) -> Sample:
        sample = Sample(self._seq, at, wall, stats, self._rate(stats.processed, at))
        self._seq += 1
        samples = self._samples
        samples.append(sample)
        while samples and samples[0].at < at - self.keep:
            samples.popleft()
        return sample

    def _rate(self, processed: int, at: float) -> float:
        base = None
        for sample in reversed(self._samples):
            base = sample
            if at - sample.at >= self.window:
                break
        if base is None or at <= base.at:
            return 0.0
        return max(0, processed - base.stats.processed) / (at - base.at)

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def since(self, seq: int) -> list[Sample]:
        """The samples numbered above `seq` (-1: all of them)."""
        return [s for s in self._samples if s.seq > seq]

    def __len__(self) -> int:
        return len(self._samples)


def lag_parts(partition: PartitionStats) -> dict[str, int] | None:
    """The lag of a partition split in its parts, or None when the snapshot lacks them."""
    values: dict[str, Any] = {name: getattr(partition, name, None) for name in LAG_PARTS}
    if values["queued"] is None or values["in_flight"] is None:
        return None
    return {name: int(value or 0) for name, value in values.items()}


def total_lag_parts(stats: Stats) -> dict[str, int] | None:
    """The lag parts summed over the partitions; None when no partition carries them."""
    total = dict.fromkeys(LAG_PARTS, 0)
    known = False
    for partition in stats.partitions:
        parts = lag_parts(partition)
        if parts is None:
            continue
        known = True
        for name, value in parts.items():
            total[name] += value
    return total if known else None


def oldest_age(partition: PartitionStats) -> float | None:
    """Seconds the partition's oldest unfinished record has waited, when known."""
    age = getattr(partition, "oldest_age", None)
    return float(age) if age is not None else None


def remaining(partition: PartitionStats) -> int:
    """Records of the partition not processed yet, as far as the snapshot tells.

    With the lag parts: not fetched + queued + in flight. Without them (or when what is not
    fetched is unknown): high watermark minus the position (lowest unfinished offset) minus
    what is done above it; with no position yet (no commit, nothing received), the high
    watermark itself.
    """
    parts = lag_parts(partition)
    if parts is not None and getattr(partition, "not_fetched", None) is not None:
        return parts["not_fetched"] + parts["queued"] + parts["in_flight"]
    high, position = partition.high_watermark, partition.position
    if high is None:
        return partition.lag or 0
    if position is None:
        return high
    return max(0, high - position - partition.done_above)


def progress(stats: Stats) -> tuple[int, int]:
    """(done, total) for a finite job: processed, and processed plus what remains."""
    left = sum(remaining(p) for p in stats.partitions)
    return stats.processed, stats.processed + left
