"""Snapshots of what a running consumer is doing, safe to hand to other threads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One assigned partition.

    `lag` is the true lag, the sum of its four parts (lag.py): not fetched + queued +
    in flight + done but not committed. `oldest_unfinished` is the record the committed
    position waits on and `oldest_age` how long it has waited (seconds): a growing age
    with work pending means a stuck record.
    """

    topic: str
    partition: int
    committed: int | None
    position: int | None
    high_watermark: int | None
    lag: int | None
    pending: int  # received, not finished
    done_above: int  # finished above the committed position, waiting for older ones
    not_fetched: int | None = None  # log end - next offset to fetch (None: log end unknown)
    queued: int = 0  # received, not started (including waiting for a retry)
    in_flight: int = 0  # with a handler (running or waiting for its outputs)
    done_not_committed: int = 0  # finished above the committed offset
    oldest_unfinished: int | None = None  # offset the committed position waits on
    oldest_age: float | None = None  # seconds it has been the oldest unfinished record
    # Head-of-line: records held back because an older record of their shard (their key,
    # or their partition in partition order) waits for a retry
    behind_retry: int = 0
    metadata_bytes: int = 0  # the last commit's metadata (offsets done above it), encoded
    metadata_throttled: bool = False  # the done set did not fit: starts above it wait


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters since start plus the current state of every assigned partition."""

    processed: int = 0
    failed: int = 0  # handler failures, including those that were retried
    retried: int = 0
    skipped_already_done: int = 0  # received again but done already (commit metadata)
    dead_lettered: int = 0  # failed for good and written to the dead-letter topic
    skipped_after_failure: int = 0  # failed for good and skipped (on_failure="skip")
    in_flight: int = 0
    queued: int = 0
    waiting_retry: int = 0
    paused: bool = False  # every partition paused: the buffer stayed full
    concurrency_limit: int = 0  # records allowed in flight now (moves with concurrency="auto")
    buffer_limit: int = 0  # records it may hold now (max_buffered, else it follows the rate)
    rate_waits: int = 0  # records held back because their key was over --key-rate
    stuck_replaced: int = 0  # workers replaced for a stuck record (--on-stuck)
    parked: int = 0  # failed records written to the retry topic (--retry-topic)
    parked_behind: int = 0  # records written to the retry topic behind their fenced key
    fenced_keys: int = 0  # keys whose records wait behind parked ones now
    paused_partitions: int = 0  # paused for the buffer or for fair sharing
    rebalances: int = 0
    commits: int = 0
    partitions: tuple[PartitionStats, ...] = field(default_factory=tuple)
    at: float = 0.0  # when the snapshot was taken (the loop's monotonic clock; 0: none yet)
    membership: str = "joining"  # "joining", "assigned" or "lost" (health.Membership)
    membership_since: float = 0.0  # when it entered that state (same clock)
    metadata_max_bytes: int = 0  # the cap of the commit metadata (max_metadata_bytes)
    advice: tuple[str, ...] = ()  # settings that would help, once the numbers show it (advice.py)
    # The control plane (steering.py): records an operator skipped, partitions an operator
    # paused (on top of flow control's pauses), and (action, result, count) since start
    skipped_by_operator: int = 0
    user_paused: tuple[tuple[str, int], ...] = ()
    control_actions: tuple[tuple[str, str, int], ...] = ()

    @property
    def held(self) -> int:
        """Records in memory: queued, in flight and waiting for a retry."""
        return self.queued + self.in_flight + self.waiting_retry

    @property
    def skipped(self) -> int:
        """Deprecated name of `skipped_already_done`."""
        return self.skipped_already_done

    @property
    def dropped(self) -> int:
        """Deprecated name of `skipped_after_failure`."""
        return self.skipped_after_failure

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


@dataclass
class Activity:
    """When records were being processed, from snapshots of the processed count. Pure.

    The run's total time includes connecting, joining the group and, with `--until-idle`,
    the idle wait at the end; the rate a user wants is over the time records were actually
    processed: from the first snapshot that saw a record done to the last one that saw
    the count move (snapshots come every `every` seconds, which bounds the error).
    """

    every: float = 0.25
    first: float | None = None
    last: float | None = None
    processed: int = 0

    def observe(self, now: float, processed: int) -> None:
        if processed > self.processed:
            if self.first is None:
                self.first = now - self.every  # it started at most one snapshot earlier
            self.last = now
            self.processed = processed

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return max(self.last - self.first, self.every)

    def summary(self, total: float) -> str:
        """`N records in X s active (R records/s); T s in all`."""
        active = self.seconds
        rate = self.processed / active if active else 0.0
        return (
            f"processed {self.processed} records in {active:.1f} s active ({rate:.0f} "
            f"records/s); {total:.1f} s in all, with connecting, joining and waiting"
        )
