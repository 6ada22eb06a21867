"""True lag: where the records between the committed offset and the log end are. Pure.

A partition's lag (log end - committed offset) splits into four parts that add up to it:

- not fetched: still only on the broker (log end - next offset to fetch);
- queued: received, not started (including records waiting for a retry);
- in flight: handed to a handler (running, or waiting for its outputs' acknowledgement);
- done, not committed: finished above the committed offset, waiting for an older record
  or for the next commit.

A stuck record then shows as what it is: one record in flight whose age keeps growing
while its partition's finished work piles up as "done, not committed", not as a backlog.
`HeadWatch` tells that age: how long a partition's committed position has been waiting
on its oldest unfinished record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from parafka.core.codec import decode_completed
from parafka.core.offsets import PartitionOffsets
from parafka.core.seam import TP
from parafka.core.stats import PartitionStats


@dataclass(frozen=True, slots=True)
class LagParts:
    """The lag of one partition, by where its records are."""

    not_fetched: int | None  # None when the log end is not known
    queued: int
    in_flight: int
    done_not_committed: int

    @property
    def total(self) -> int | None:
        """The whole lag (None when the log end is not known)."""
        if self.not_fetched is None:
            return None
        return self.not_fetched + self.queued + self.in_flight + self.done_not_committed


def split_lag(
    *,
    log_end: int | None,
    committed: int | None,
    next_offset: int | None,
    unfinished: int,
    in_flight: int,
    done_above: int,
) -> LagParts:
    """Split a partition's lag.

    `committed` is the last committed offset (None before the group's first commit),
    `next_offset` the offset the next fetched record will have, `unfinished` the records
    received and not finished (of which `in_flight` are with a handler), `done_above` the
    records finished above the oldest unfinished one.

    Every offset received since the committed one that is not unfinished counts as done:
    that includes offsets that never arrive (transaction markers, compaction), which the
    next commit moves past like finished records. Before the first commit, only
    `done_above` is known to be done. A log end behind the next offset (a broker whose
    high watermark lags the real log end) counts as nothing left to fetch.
    """
    in_flight = max(0, min(in_flight, unfinished))
    queued = max(0, unfinished - in_flight)
    if committed is not None and next_offset is not None:
        done = max(0, next_offset - committed - unfinished)
    else:
        done = max(0, done_above)
    not_fetched = None
    if log_end is not None and next_offset is not None:
        not_fetched = max(0, log_end - next_offset)
    return LagParts(not_fetched, queued, in_flight, done)


class HeadWatch:
    """Since when each partition's oldest unfinished record has been its oldest.

    Updated at stats refresh time (4 times a second), never on the per-record path, so
    an age is late by at most one refresh interval.
    """

    def __init__(self) -> None:
        self._heads: dict[TP, tuple[int, float]] = {}  # partition -> (offset, since)

    def age(self, tp: TP, oldest: int | None, now: float) -> float | None:
        """Seconds `oldest` has been the partition's oldest unfinished record (None when
        nothing is unfinished)."""
        if oldest is None:
            self._heads.pop(tp, None)
            return None
        head = self._heads.get(tp)
        if head is None or head[0] != oldest:
            self._heads[tp] = (oldest, now)
            return 0.0
        return now - head[1]

    def retain(self, tps: Iterable[TP]) -> None:
        """Forget partitions not in `tps` (revoked or lost)."""
        keep = set(tps)
        for tp in [tp for tp in self._heads if tp not in keep]:
            del self._heads[tp]


def partition_stats(
    tp: TP,
    state: PartitionOffsets,
    log_end: int | None,
    heads: HeadWatch,
    now: float,
    head_of_line: tuple[int, int, bool] = (0, 0, False),
) -> PartitionStats:
    """The snapshot of one assigned partition, with its lag split, its oldest unfinished
    record, and what holds its line: (records behind a retry, commit metadata bytes,
    throttled for the metadata's size)."""
    behind_retry, metadata_bytes, throttled = head_of_line
    unfinished = state.pending_count
    parts = split_lag(
        log_end=log_end,
        committed=state.committed,
        next_offset=state.next_offset,
        unfinished=unfinished,
        in_flight=state.running,
        done_above=state.done_above_count,
    )
    position = state.position
    oldest = position if unfinished > 0 else None
    return PartitionStats(
        topic=tp[0],
        partition=tp[1],
        committed=state.committed,
        position=position,
        high_watermark=log_end,
        lag=parts.total,
        pending=unfinished,
        done_above=state.done_above_count,
        not_fetched=parts.not_fetched,
        queued=parts.queued,
        in_flight=parts.in_flight,
        done_not_committed=parts.done_not_committed,
        oldest_unfinished=oldest,
        oldest_age=heads.age(tp, oldest, now),
        behind_retry=behind_retry,
        metadata_bytes=metadata_bytes,
        metadata_throttled=throttled,
    )


@dataclass(frozen=True, slots=True)
class CommittedLag:
    """A group's lag on one partition as the broker sees it (`parafka lag`): what is
    committed, not what a running consumer holds."""

    topic: str
    partition: int
    committed: int | None  # None: the group has no commit for this partition
    log_end: int | None
    lag: int | None
    done_not_committed: int | None  # from parafka's commit metadata; None when absent
    # The broker reported a log end below the committed offset: it cannot be the log end
    # (the local broker's high watermark lags its log), so the lag is unknown, not 0.
    log_end_unknown: bool = False


def committed_lag(
    topic: str,
    partition: int,
    *,
    low: int | None,
    high: int | None,
    committed: int | None,
    metadata: str | None,
) -> CommittedLag:
    """The lag of a committed offset: log end - committed (records already deleted by
    retention, below the low watermark, do not count). parafka's commit metadata (codec.py)
    tells how many records above the committed offset were already done; a plain consumer
    writes none, and some brokers drop it: then it is None, not 0."""
    if committed is not None and committed < 0:
        committed = None
    if high is not None and high < 0:
        high = None
    lag = None
    unknown = committed is not None and high is not None and committed > high
    if committed is not None and high is not None and not unknown:
        lag = max(0, high - max(committed, low if low is not None and low >= 0 else 0))
    done = None
    if committed is not None:
        finished = decode_completed(committed, metadata)
        if finished:
            done = len(finished) if lag is None else min(len(finished), lag)
    return CommittedLag(topic, partition, committed, high, lag, done, unknown)
