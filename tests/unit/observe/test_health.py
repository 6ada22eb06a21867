"""`/healthz` decisions from a snapshot: stuck records, out of the group, starting."""

from __future__ import annotations

import pytest

from parafka.core.errors import ConfigError
from parafka.core.stats import PartitionStats, Stats
from parafka.observe.health import HealthPolicy, Membership, assess

POLICY = HealthPolicy(stuck_after=30.0, join_grace=20.0)


def _partition(partition: int, oldest: int | None, age: float | None) -> PartitionStats:
    return PartitionStats(
        "orders", partition, 5, 5, 50, 45, 45, 0, oldest_unfinished=oldest, oldest_age=age
    )


def _stats(*partitions: PartitionStats, at: float = 100.0, **kwargs: object) -> Stats:
    state = {"membership": "assigned", "membership_since": 10.0, **kwargs}
    return Stats(partitions=partitions, at=at, **state)  # type: ignore[arg-type]


def test_healthy_while_records_move() -> None:
    health = assess(_stats(_partition(0, 5, 2.0), _partition(1, None, None)), 100.0, POLICY)
    assert health.ok
    assert health.body["status"] == "ok"
    assert health.body["partitions"] == 2


def test_a_record_unfinished_too_long_is_stuck_and_named() -> None:
    stats = _stats(_partition(0, 5, 2.0), _partition(1, 17, 31.0), _partition(2, 40, 95.0))
    health = assess(stats, 100.0, POLICY)
    assert not health.ok
    assert health.body["status"] == "stuck"
    assert health.body["stuck"] == [
        {"topic": "orders", "partition": 2, "offset": 40, "age_seconds": 95.0},
        {"topic": "orders", "partition": 1, "offset": 17, "age_seconds": 31.0},
    ]
    assert "orders[2]@40" in health.body["reason"]


def test_not_joined_after_the_grace_period() -> None:
    joining = _stats(membership="joining", membership_since=90.0)
    assert assess(joining, 100.0, POLICY).ok
    health = assess(joining, 111.0, POLICY)
    assert not health.ok
    assert health.body["status"] == "out_of_group"


def test_lost_partitions_fail_until_assigned_again() -> None:
    lost = _stats(membership="lost", membership_since=70.0)
    health = assess(lost, 100.0, POLICY)
    assert not health.ok
    assert "lost" in health.body["reason"]


def test_no_partitions_in_a_crowded_group_is_healthy() -> None:
    assert assess(_stats(), 100.0, POLICY).ok


def test_a_snapshot_that_stopped_refreshing_means_a_stuck_control_thread() -> None:
    health = assess(_stats(at=10.0), 100.0, POLICY)
    assert not health.ok
    assert "control thread" in health.body["reason"]


def test_starting() -> None:
    assert assess(Stats(), 5.0, POLICY).body["status"] == "starting"


def test_membership_follows_the_callbacks() -> None:
    member = Membership(now=0.0)
    assert (member.state, member.since) == ("joining", 0.0)
    member.assigned(3.0)
    member.assigned(9.0)  # a later rebalance: still in since 3
    assert (member.state, member.since) == ("assigned", 3.0)
    member.lost(12.0)
    assert (member.state, member.since) == ("lost", 12.0)
    member.assigned(14.0)
    assert (member.state, member.since) == ("assigned", 14.0)


@pytest.mark.parametrize("field", ["stuck_after", "join_grace"])
@pytest.mark.parametrize("value", [0, -1.0, "10"])
def test_policy_rejects_bad_durations(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        HealthPolicy(**{field: value})  # type: ignore[arg-type]
