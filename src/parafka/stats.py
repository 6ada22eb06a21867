"""Snapshots of what a running consumer is doing, safe to hand to other threads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One assigned partition. `lag` is the high watermark minus the committed offset."""

    topic: str
    partition: int
    committed: int | None
    position: int | None
    high_watermark: int | None
    lag: int | None
    pending: int  # received, not finished
    done_above: int  # finished above the committed position, waiting for older ones


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters since start plus the current state of every assigned partition."""

    processed: int = 0
    failed: int = 0  # handler failures, including those that were retried
    retried: int = 0
    skipped: int = 0  # already done according to the commit metadata
    dead_lettered: int = 0  # failed for good and written to the dead-letter topic
    dropped: int = 0  # failed for good and skipped (on_failure="skip")
    in_flight: int = 0
    queued: int = 0
    waiting_retry: int = 0
    paused: bool = False  # every partition paused: the buffer stayed full
    paused_partitions: int = 0  # paused for the buffer or for fair sharing
    rebalances: int = 0
    commits: int = 0
    partitions: tuple[PartitionStats, ...] = field(default_factory=tuple)

    @property
    def held(self) -> int:
        """Records in memory: queued, in flight and waiting for a retry."""
        return self.queued + self.in_flight + self.waiting_retry

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)
