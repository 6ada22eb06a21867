"""Partition assignment strategies, as pure functions of members and partitions.

`members` maps member id to the topics it subscribes to; ids sort in join order, so every
strategy is deterministic. Range and round-robin are eager (the whole assignment is
recomputed); cooperative-sticky keeps what each member holds and moves as little as it
can to balance the counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parafka.core.seam import TP

Assignment = dict[str, list[TP]]

EAGER = ("range", "roundrobin")
COOPERATIVE = ("cooperative-sticky",)


def strategy_of(config_value: str | None) -> str:
    """The strategy a `partition.assignment.strategy` value selects (its first entry;
    librdkafka's default is "range,roundrobin", so range)."""
    first = (config_value or "range").split(",")[0].strip().lower()
    if first not in EAGER + COOPERATIVE:
        raise ValueError(
            f"partition.assignment.strategy {config_value!r} is not modelled in memory; "
            f"use one of {', '.join(EAGER + COOPERATIVE)}"
        )
    return first


def assign_range(members: Mapping[str, Sequence[str]], partitions: Mapping[str, int]) -> Assignment:
    """Per topic, contiguous runs of partitions; the first members get one more."""
    result: Assignment = {member: [] for member in sorted(members)}
    for topic in sorted(partitions):
        takers = [m for m in sorted(members) if topic in members[m]]
        if not takers:
            continue
        share, extra = divmod(partitions[topic], len(takers))
        start = 0
        for index, member in enumerate(takers):
            count = share + (1 if index < extra else 0)
            result[member].extend((topic, p) for p in range(start, start + count))
            start += count
    return result


def assign_roundrobin(
    members: Mapping[str, Sequence[str]], partitions: Mapping[str, int]
) -> Assignment:
    """All partitions in (topic, partition) order, dealt to the members in turn."""
    order = sorted(members)
    result: Assignment = {member: [] for member in order}
    turn = 0
    for topic in sorted(partitions):
        for p in range(partitions[topic]):
            for _ in range(len(order)):
                member = order[turn % len(order)]
                turn += 1
                if topic in members[member]:
                    result[member].append((topic, p))
                    break
    return result


def assign_sticky(
    members: Mapping[str, Sequence[str]],
    partitions: Mapping[str, int],
    current: Mapping[str, Sequence[TP]],
) -> Assignment:
    """Keep each member's `current` partitions, give free ones to the least loaded, then
    move partitions from the most to the least loaded until counts differ by at most one."""
    order = sorted(members)
    wanted = sorted((t, p) for t in partitions for p in range(partitions[t]))
    result: Assignment = {
        m: sorted(tp for tp in current.get(m, ()) if tp[0] in members[m]) for m in order
    }
    taken = {tp for held in result.values() for tp in held}
    for tp in wanted:
        if tp in taken:
            continue
        takers = [m for m in order if tp[0] in members[m]]
        if takers:
            target = min(takers, key=lambda m: (len(result[m]), order.index(m)))
            result[target].append(tp)
    while True:
        move = _one_move(order, members, result)
        if move is None:
            return {m: sorted(held) for m, held in result.items()}
        tp, source, target = move
        result[source].remove(tp)
        result[target].append(tp)


def _one_move(
    order: Sequence[str], members: Mapping[str, Sequence[str]], result: Assignment
) -> tuple[TP, str, str] | None:
    """A partition to move from a member with 2+ more than another that can take it."""
    by_load = sorted(order, key=lambda m: (-len(result[m]), order.index(m)))
    for source in by_load:
        for target in reversed(by_load):
            if len(result[source]) - len(result[target]) < 2:
                continue
            for tp in sorted(result[source], reverse=True):
                if tp[0] in members[target]:
                    return tp, source, target
    return None
