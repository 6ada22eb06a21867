"""Parking records on a retry topic, and the per-key fence that keeps their order. Pure.

With a retry topic T, a record that failed its quick in-memory attempts is *parked*:
written to T (keyed by its own key, so one key's parked records share a T partition and
keep their order there), with headers saying where it came from, why, and when it is
due. Once T acknowledges the write, the source record counts as done, so the source
partition's committed offset moves on.

The *fence* keeps a key's order: while a key of a source partition has parked records
not yet finished, its later records are parked behind them (due at once, reason
"behind") instead of running. The fence of a key remembers, per T partition, the offset
of the key's last write there; it is lifted once the group's committed offset of each
of those T partitions is past it. T is committed only past work that is done (T's
records are ordinary records of the engine), so a lift is never early, even when another
consumer owns the T partition. After a crash or a rebalance, the new owner of a source
partition rebuilds its fences by reading T from the group's committed offsets to its end
(`Fences.rebuild`). docs/architecture.md, "Retry topic", says why this design.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import NamedTuple

from parafka.core.deadletter import RETRY_PREFIX, exception_name, header_text
from parafka.core.record import Headers, Produced, Record
from parafka.core.retry import RetryPolicy
from parafka.core.seam import TP, Message

PREFIX = RETRY_PREFIX
TOPIC = PREFIX + "topic"  # the source record's topic, partition and offset
PARTITION = PREFIX + "partition"
OFFSET = PREFIX + "offset"
ATTEMPTS = PREFIX + "attempts"  # attempts made before it was parked (0: parked behind)
DUE = PREFIX + "due"  # when it may run again: milliseconds since the epoch
REASON = PREFIX + "reason"  # "failed" (its own failure) or "behind" (a fenced key)
FIRST_ERROR = PREFIX + "first-error"  # "module.Type: message" of the first failure
GROUP = PREFIX + "group"

FAILED = "failed"
BEHIND = "behind"
MAX_ERROR_BYTES = 1024

# The delays of a parked record's attempts (taken from T): the first one is due
# `initial_backoff` after it is parked, each next one `multiplier` times later.
DEFAULT_PARK_POLICY = RetryPolicy(
    max_attempts=5, initial_backoff=1.0, multiplier=4.0, max_backoff=300.0, jitter=0.1
)

Key = Hashable


class Origin(NamedTuple):
    """Where a parked record came from, read from its headers."""

    topic: str
    partition: int
    offset: int
    due: float  # seconds since the epoch
    attempts: int


def parked_record(
    record: Record,
    retry_topic: str,
    group: str,
    reason: str,
    due: float,
    error: BaseException | None,
) -> Produced:
    """What to write to `retry_topic` for `record`: its key, value and headers, plus the
    parafka.retry.* headers (provenance, attempts, due time in ms, the first error)."""
    first = (
        ""
        if error is None
        else f"{exception_name(error)}: {error}".encode("utf-8", "replace")[:MAX_ERROR_BYTES]
    )
    headers: list[tuple[str, bytes | str | None]] = [
        h for h in record.headers or () if not h[0].startswith(PREFIX)
    ]
    headers.extend(
        [
            (TOPIC, record.topic.encode()),
            (PARTITION, str(record.partition).encode()),
            (OFFSET, str(record.offset).encode()),
            (ATTEMPTS, str(record.attempt if reason == FAILED else 0).encode()),
            (DUE, str(round(due * 1000)).encode()),
            (REASON, reason.encode()),
            (GROUP, group.encode()),
        ]
    )
    if first:
        headers.append((FIRST_ERROR, first))
    return retry_topic, record.value, record.key, headers


def origin(headers: Headers | None) -> Origin | None:
    """The provenance of a record read from the retry topic (None: not parafka's)."""
    topic = header_text(headers, TOPIC)
    partition = header_text(headers, PARTITION)
    offset = header_text(headers, OFFSET)
    if topic is None or partition is None or offset is None:
        return None
    try:
        due_ms = int(header_text(headers, DUE) or 0)
        attempts = int(header_text(headers, ATTEMPTS) or 0)
        return Origin(topic, int(partition), int(offset), due_ms / 1000, attempts)
    except ValueError:
        return None


def due_of(headers: Headers | None) -> float:
    """When a record of the retry topic may run, in seconds since the epoch (0: now)."""
    text = header_text(headers, DUE)
    if text is None:
        return 0.0
    try:
        return int(text) / 1000
    except ValueError:
        return 0.0


class Fence:
    """One key's fence in one source partition: the lowest source offset it holds back
    from (its first parked record's), and its last write per retry-topic partition."""

    __slots__ = ("since", "writes")

    def __init__(self, since: int) -> None:
        self.since = since
        self.writes: dict[int, int] = {}


class Fences:
    """Per source partition: the keys with parked records not yet finished, each with its
    `Fence`. A record of a fenced key is held back only from the fence's first parked
    record on: an older one (run again after a crash or a rebalance, its effect already
    made before the parked one's) runs as it would have, ahead of the parked records."""

    def __init__(self) -> None:
        self._parts: dict[TP, dict[Key, Fence]] = {}

    def __len__(self) -> int:
        """How many keys are fenced, over all source partitions."""
        return sum(len(keys) for keys in self._parts.values())

    def fenced(self, tp: TP, key: Key, offset: int) -> bool:
        """Whether the record at `offset` of `tp` with `key` must wait behind parked ones."""
        keys = self._parts.get(tp)
        if keys is None:
            return False
        fence = keys.get(key)
        return fence is not None and offset >= fence.since

    def count(self, tp: TP) -> int:
        return len(self._parts.get(tp, ()))

    def written(
        self, tp: TP, key: Key, source_offset: int, retry_partition: int, offset: int
    ) -> None:
        """The record at `source_offset` of `tp`, with `key`, was parked at `offset` of a
        retry partition."""
        keys = self._parts.setdefault(tp, {})
        fence = keys.get(key)
        if fence is None:
            fence = keys[key] = Fence(source_offset)
        elif source_offset < fence.since:
            fence.since = source_offset
        writes = fence.writes
        if offset > writes.get(retry_partition, -1):
            writes[retry_partition] = offset

    def rebuild(self, tp: TP, records: Iterable[Message]) -> int:
        """Fences of `tp` from the retry topic's unfinished records (read from the group's
        committed offsets to the end). Returns how many keys are fenced."""
        self._parts.pop(tp, None)
        for message in records:
            found = origin(message.headers())
            if found is not None and (found.topic, found.partition) == tp:
                self.written(tp, message.key(), found.offset, message.partition(), message.offset())
        return self.count(tp)

    def forget(self, tp: TP) -> None:
        """`tp` is not ours any more: its next owner rebuilds its fences."""
        self._parts.pop(tp, None)

    def retry_partitions(self) -> set[int]:
        """The retry-topic partitions some fence waits on."""
        return {p for keys in self._parts.values() for f in keys.values() for p in f.writes}

    def lift(self, committed: dict[int, int | None]) -> int:
        """Lift the fences whose every write is below the group's committed offset of its
        retry partition (`committed`: partition -> offset, None when none committed).
        Returns how many keys were lifted."""
        lifted = 0
        for tp in list(self._parts):
            keys = self._parts[tp]
            for key in [k for k, fence in keys.items() if _passed(fence.writes, committed)]:
                del keys[key]
                lifted += 1
            if not keys:
                del self._parts[tp]
        return lifted


def _passed(writes: dict[int, int], committed: dict[int, int | None]) -> bool:
    for partition, offset in writes.items():
        position = committed.get(partition)
        if position is None or position <= offset:
            return False
    return True
