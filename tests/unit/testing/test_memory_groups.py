"""Random sequences of produce, consume, commit, join, close, crash and expire against the
in-memory cluster: a partition is fetched by one member at a time, in offset order, and
committed offsets are exactly what was last committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from parafka.core.seam import TP, Offset
from parafka.testing.memory import InMemoryCluster, MemoryConsumer, RecordingEvents, VirtualClock
from parafka.testing.memory.assignors import assign_range, assign_roundrobin, assign_sticky
from parafka.testing.memory.consumer import Status

PARTITIONS = 3
TPS = [("t", p) for p in range(PARTITIONS)]


@dataclass
class Runner:
    strategy: str
    clock: VirtualClock = field(default_factory=VirtualClock)
    members: list[tuple[MemoryConsumer, RecordingEvents]] = field(default_factory=list)
    next_offset: dict[TP, int] = field(default_factory=dict)  # per member view, see consume
    last_commit: dict[TP, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cluster = InMemoryCluster(self.clock)
        self.cluster.create_topic("t", PARTITIONS)
        self.expected_next: dict[tuple[int, TP], int] = {}

    def live(self) -> list[tuple[int, MemoryConsumer, RecordingEvents]]:
        return [(i, c, e) for i, (c, e) in enumerate(self.members) if c.status is Status.MEMBER]

    def pick(self, index: int) -> tuple[int, MemoryConsumer, RecordingEvents] | None:
        live = self.live()
        return live[index % len(live)] if live else None

    def step(self, op: str, index: int, value: int) -> None:
        if op == "produce":
            self.cluster.produce("t", str(value).encode(), partition=value % PARTITIONS)
        elif op == "join" and len(self.live()) < 4:
            events = RecordingEvents()
            consumer = self.cluster.consumer(
                {"group.id": "g", "partition.assignment.strategy": self.strategy}, events
            )
            consumer.subscribe(["t"])
            self.members.append((consumer, events))
        elif (chosen := self.pick(index)) is not None:
            self.member_step(op, value, *chosen)
        self.clock.advance(0.01)
        self.check_one_owner()

    def member_step(
        self, op: str, value: int, i: int, consumer: MemoryConsumer, events: RecordingEvents
    ) -> None:
        if op == "consume":
            seen = len(events.calls)
            records = consumer.consume(1 + value % 5, 0)
            self.check_one_owner()
            for name, partitions in events.calls[seen:]:
                if name in ("revoke", "lost"):
                    for tp in partitions:  # type: ignore[attr-defined]
                        self.expected_next.pop((i, tp), None)
            for record in records:
                tp = (record.topic(), record.partition())
                expected = self.expected_next.get((i, tp))
                if expected is None:  # first fetch since assignment: from the commit
                    expected = self.last_commit.get(tp, 0)
                assert record.offset() == expected, (i, tp, record.offset(), expected)
                self.expected_next[(i, tp)] = record.offset() + 1
        elif op == "commit":
            held = consumer.assignment
            if held:
                tp = held[value % len(held)]
                position = consumer.position(tp)
                if position is not None:
                    consumer.commit([Offset(*tp, position, f"m{position}")], asynchronous=False)
                    if events.commits()[-1].error is None:  # a zombie's commit fails
                        self.last_commit[tp] = position
        elif op == "close":
            consumer.close()
        elif op == "crash":
            self.cluster.crash(consumer)
        elif op == "expire":
            self.cluster.expire(consumer)
            for tp in TPS:
                self.expected_next.pop((i, tp), None)
        for tp, offset in self.last_commit.items():
            assert self.cluster.committed("g", *tp) == Offset(*tp, offset, f"m{offset}")

    def check_one_owner(self) -> None:
        """No two members fetch the same partition (an expired one no longer fetches)."""
        owners: dict[TP, int] = {}
        for i, consumer, _events in self.live():
            if consumer.member is None or not consumer.member.in_group:
                continue
            for tp in consumer.assignment:
                assert tp not in owners, f"{tp} fetched by members {owners[tp]} and {i}"
                owners[tp] = i

    def drain(self) -> None:
        """With one member left, everything after the commits is fetched, in order."""
        for _i, consumer, _e in self.live()[1:]:
            consumer.close()
        if not self.live():
            self.step("join", 0, 0)
        (i, consumer, _e) = self.live()[0]
        for _ in range(20):
            self.member_step("consume", 4, i, consumer, _e)
        assert sorted(consumer.assignment) == TPS
        for tp in TPS:
            end = self.cluster.end_offset(tp)
            assert self.expected_next.get((i, tp), self.last_commit.get(tp, 0)) == end


OPS = st.sampled_from(
    [
        "produce",
        "produce",
        "consume",
        "consume",
        "consume",
        "commit",
        "join",
        "close",
        "crash",
        "expire",
    ]
)


@given(
    strategy=st.sampled_from(["range", "roundrobin", "cooperative-sticky"]),
    steps=st.lists(st.tuples(OPS, st.integers(0, 7), st.integers(0, 1000)), max_size=60),
)
def test_random_group_histories_keep_one_owner_and_offset_order(
    strategy: str, steps: Sequence[tuple[str, int, int]]
) -> None:
    runner = Runner(strategy)
    runner.step("join", 0, 0)
    for op, index, value in steps:
        runner.step(op, index, value)
    runner.drain()


subscriptions = st.dictionaries(
    st.sampled_from([f"m{i}" for i in range(5)]),
    st.sets(st.sampled_from(["a", "b"]), min_size=1).map(lambda s: tuple(sorted(s))),
    min_size=1,
)


@given(members=subscriptions, a=st.integers(0, 6), b=st.integers(0, 6))
def test_assignors_give_each_partition_to_one_subscriber(
    members: dict[str, tuple[str, ...]], a: int, b: int
) -> None:
    counts = {t: n for t, n in {"a": a, "b": b}.items() if n}
    wanted = {
        (t, p) for t, n in counts.items() for p in range(n) if any(t in s for s in members.values())
    }
    for result in (
        assign_range(members, counts),
        assign_roundrobin(members, counts),
        assign_sticky(members, counts, {}),
    ):
        given_out = [tp for tps in result.values() for tp in tps]
        assert sorted(given_out) == sorted(wanted)
        for member, tps in result.items():
            assert all(tp[0] in members[member] for tp in tps)


@given(current=st.lists(st.integers(0, 3), min_size=8, max_size=8))
def test_sticky_keeps_what_it_can_and_balances(current: list[int]) -> None:
    members = {f"m{i}": ("t",) for i in range(4)}
    held = {f"m{i}": [("t", p) for p, owner in enumerate(current) if owner == i] for i in range(4)}
    result = assign_sticky(members, {"t": 8}, held)
    sizes = sorted(len(tps) for tps in result.values())
    assert sizes == [2, 2, 2, 2]
    kept = sum(len(set(result[m]) & set(held[m])) for m in members)
    assert kept == sum(min(2, len(held[m])) for m in members)
