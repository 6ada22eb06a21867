"""Is the consumer healthy? Judged from a `Stats` snapshot, for `/healthz`. Pure.

Unhealthy means one of:

- stuck: a partition's committed position has waited on the same unfinished record for
  longer than `stuck_after` (the rest of the partition may still flow; that record holds
  its commits back), or the control thread stopped refreshing its snapshot;
- out of its group: not joined `join_grace` seconds after starting, or partitions lost
  (session expired) and not assigned again within `join_grace`.

An instance with no partitions in a group with more members than partitions is healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parafka.core.errors import ConfigError
from parafka.core.options import default
from parafka.core.stats import Stats

JOINING, ASSIGNED, LOST = "joining", "assigned", "lost"


class Membership:
    """The consumer's place in its group, as the rebalance callbacks tell it."""

    def __init__(self, now: float) -> None:
        self.state = JOINING
        self.since = now

    def assigned(self, now: float) -> None:
        """Partitions were assigned (possibly none): the consumer is in its group."""
        if self.state != ASSIGNED:
            self.state, self.since = ASSIGNED, now

    def lost(self, now: float) -> None:
        """The partitions were lost (session expired): out until the next assignment."""
        self.state, self.since = LOST, now


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When `/healthz` fails (seconds)."""

    stuck_after: float = default("stuck_after")
    join_grace: float = default("join_grace")
    # Topics whose records wait on purpose (the retry topic: a parked record waits for its
    # due time, minutes maybe): their partitions are never called stuck.
    patient: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("stuck_after", "join_grace"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name}={value!r} is invalid: use a number of seconds > 0")


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    body: dict[str, Any] = field(default_factory=dict)


def assess(stats: Stats, now: float, policy: HealthPolicy) -> Health:
    """The consumer's health from its latest snapshot; `now` is on the snapshot's clock."""
    if stats.at == 0.0:
        return Health(True, {"status": "starting"})
    silent = now - stats.at
    if silent > policy.stuck_after:
        return Health(
            False,
            {
                "status": "stuck",
                "reason": f"the control thread has not refreshed its state for {silent:.0f} s",
            },
        )
    away = now - stats.membership_since
    if stats.membership != ASSIGNED and away > policy.join_grace:
        reason = (
            f"not joined its group {away:.0f} s after starting"
            if stats.membership == JOINING
            else f"lost its partitions {away:.0f} s ago and not assigned again"
        )
        return Health(False, {"status": "out_of_group", "reason": reason})
    late = sorted(
        (
            p
            for p in stats.partitions
            if p.oldest_age is not None
            and p.oldest_age > policy.stuck_after
            and p.topic not in policy.patient
        ),
        key=lambda p: -(p.oldest_age or 0.0),
    )
    if late:
        stuck = [
            {
                "topic": p.topic,
                "partition": p.partition,
                "offset": p.oldest_unfinished,
                "age_seconds": round(p.oldest_age or 0.0, 1),
            }
            for p in late
        ]
        first = late[0]
        reason = (
            f"{first.topic}[{first.partition}]@{first.oldest_unfinished} unfinished for "
            f"{first.oldest_age or 0.0:.0f} s (over {policy.stuck_after:g} s)"
        )
        return Health(False, {"status": "stuck", "reason": reason, "stuck": stuck})
    return Health(
        True,
        {
            "status": "ok",
            "membership": stats.membership,
            "partitions": len(stats.partitions),
            "in_flight": stats.in_flight,
            "lag": stats.lag,
        },
    )
