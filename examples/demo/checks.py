"""What the demo's scenes verify, as pure functions of what their handlers recorded."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

# What a record's order is judged within: (partition, key) -> shard, or None for no order.
Shard = Callable[[int, bytes | None], Hashable]


@dataclass(frozen=True, slots=True)
class Call:
    """One handler call: when it ran, which record, which job."""

    started: float
    ended: float
    partition: int
    key: bytes | None
    offset: int
    job: int


def shard_of(ordering: str) -> Shard | None:
    """The order a mode promises: per (partition, key), per partition, or none."""
    if ordering == "key":
        return lambda partition, key: (partition, key)
    if ordering == "partition":
        return lambda partition, _key: partition
    return None


def order_violations(calls: Iterable[Call], shard: Shard) -> int:
    """Calls of one shard that overlapped the one before or went back in offsets."""
    by_shard: dict[Hashable, list[Call]] = defaultdict(list)
    for call in calls:
        by_shard[shard(call.partition, call.key)].append(call)
    bad = 0
    for shard_calls in by_shard.values():
        shard_calls.sort(key=lambda c: (c.started, c.ended))
        for before, after in itertools.pairwise(shard_calls):
            if after.started < before.ended or after.offset <= before.offset:
                bad += 1
    return bad


def missing_jobs(calls: Iterable[Call], expected: int) -> int:
    """How many of the jobs 0 .. expected-1 no call ran."""
    return expected - len({c.job for c in calls if 0 <= c.job < expected})


def repeated_jobs(calls: Sequence[Call]) -> int:
    """Calls beyond the first of their job (at-least-once: allowed, but worth showing)."""
    return len(calls) - len({c.job for c in calls})


def max_concurrent(calls: Iterable[Call]) -> int:
    """The most calls that were running at one moment."""
    events = sorted(
        itertools.chain.from_iterable(((c.started, 1), (c.ended, -1)) for c in calls),
        key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def span(calls: Sequence[Call]) -> float:
    """First call's start to last call's end, seconds (group join and shutdown excluded)."""
    if not calls:
        return float("nan")
    return max(c.ended for c in calls) - min(c.started for c in calls)


def verdict(calls: Sequence[Call], expected: int, ordering: str | None) -> tuple[str, bool]:
    """The check text of a sleep-job run and whether it passed: every job ran, order held."""
    missing = missing_jobs(calls, expected)
    parts = [f"all {expected:,} ran" if not missing else f"{missing:,} of {expected:,} MISSING"]
    repeated = repeated_jobs(calls)
    if repeated:
        parts.append(f"{repeated} ran twice")
    shard = shard_of(ordering) if ordering else None
    bad = order_violations(calls, shard) if shard is not None else 0
    if shard is not None:
        parts.append(f"order per {ordering}: " + ("held" if not bad else f"{bad} BROKEN"))
    return "; ".join(parts), missing == 0 and bad == 0
