"""Commit planning: offsets, metadata, and the throttle when metadata does not fit."""

from __future__ import annotations

import random

from parafka.core.codec import decode_completed
from parafka.core.commits import CommitPlanner
from parafka.core.offsets import PartitionOffsets


def tracker(received: range, finished: list[int]) -> PartitionOffsets:
    po = PartitionOffsets(committed=received.start)
    for o in received:
        po.receive(o)
    for o in finished:
        po.finish(o)
    return po


def test_plan_commits_changed_partitions_with_metadata() -> None:
    a = tracker(range(0, 10), [0, 1, 5, 7])
    b = tracker(range(0, 10), [])
    planner = CommitPlanner(4096)
    plan = planner.plan({("t", 0): a, ("t", 1): b})
    ((topic, partition, offset, metadata),) = plan.offsets
    assert (topic, partition, offset) == ("t", 0, 2)
    assert decode_completed(2, metadata) == {5, 7}
    assert planner.metadata_bytes == {("t", 0): len(metadata)}  # what the metrics show
    assert not a.needs_commit()
    assert planner.plan({("t", 0): a}).offsets == []  # nothing changed since
    planner.forget(("t", 0))
    assert planner.metadata_bytes == {}


def test_only_limits_the_partitions() -> None:
    a, b = tracker(range(5), [0]), tracker(range(5), [0])
    plan = CommitPlanner(4096).plan({("t", 0): a, ("t", 1): b}, only=[("t", 1)])
    assert [(p, o) for _, p, o, _ in plan.offsets] == [(1, 1)]


def test_metadata_that_does_not_fit_throttles_until_it_fits() -> None:
    finished = random.Random(7).sample(range(1, 4000), 600)  # scattered: does not compress
    state = tracker(range(0, 4000), finished)
    planner = CommitPlanner(max_metadata_bytes=64)
    plan = planner.plan({("t", 0): state})
    assert plan.offsets == [("t", 0, 0, "")]  # plain offset
    assert plan.throttle == {("t", 0): max(finished)}  # fill the holes, start nothing new
    assert planner.throttled == {("t", 0)}
    for o in set(range(1, 4000)) - set(finished):  # the rest finish: the set collapses
        state.finish(o)
    state.finish(0)
    plan = planner.plan({("t", 0): state})
    assert plan.offsets == [("t", 0, 4000, "")]
    assert plan.unthrottle == [("t", 0)] and not planner.throttled


def test_zero_metadata_bytes_disables_metadata() -> None:
    state = tracker(range(10), [3, 4])
    plan = CommitPlanner(0).plan({("t", 0): state})
    assert plan.offsets == [("t", 0, 0, "")] and not plan.throttle


def test_a_throttled_partition_commits_metadata_again_once_it_fits() -> None:
    """Throttled because the set did not fit; some holes fill and the (non-empty) set fits:
    the next commit carries it, and the throttle is lifted."""
    rng = random.Random(11)
    finished = sorted(rng.sample(range(2, 400), 150))  # ragged: needs more than 64 bytes
    state = tracker(range(0, 400), finished)
    planner = CommitPlanner(max_metadata_bytes=64)
    first = planner.plan({("t", 0): state})
    assert first.offsets == [("t", 0, 0, "")] and planner.throttled == {("t", 0)}
    for o in range(2, 400):  # every hole but offsets 0 and 1 fills: a single run above 1
        if o not in finished:
            state.finish(o)
    second = planner.plan({("t", 0): state})
    ((_, _, offset, metadata),) = second.offsets
    assert offset == 0 and metadata and len(metadata) <= 64
    assert decode_completed(0, metadata) == set(range(2, 400))
    assert second.unthrottle == [("t", 0)] and not second.throttle and not planner.throttled
    state.finish(0)  # the position moves; the set above it still travels
    third = planner.plan({("t", 0): state})
    ((_, _, offset, metadata),) = third.offsets
    assert offset == 1 and decode_completed(1, metadata) == set(range(2, 400))
