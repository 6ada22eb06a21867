"""The in-memory cluster's specifics the real broker cannot show cheaply: faults, crashes,
expiry, fencing, the metadata cap, the LSO of an open transaction, delays."""

from __future__ import annotations

import pytest

from parafka.core.seam import ClientError, Offset
from parafka.testing.memory import InMemoryCluster, MemoryConsumer, RecordingEvents, VirtualClock


def _cluster(partitions: int = 2) -> InMemoryCluster:
    cluster = InMemoryCluster(VirtualClock())
    cluster.create_topic("t", partitions)
    return cluster


def _member(
    cluster: InMemoryCluster, group: str = "g", **config: object
) -> tuple[MemoryConsumer, RecordingEvents]:
    events = RecordingEvents()
    consumer = cluster.consumer({"group.id": group, **config}, events)
    consumer.subscribe(["t"])
    return consumer, events


def test_clock_moves_forward_only_and_is_callable() -> None:
    clock = VirtualClock(5)
    assert clock() == clock.now() == 5
    assert clock.advance(1.5) == 6.5
    assert clock.millis() == 6500
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_keyed_records_go_to_a_stable_partition() -> None:
    cluster = _cluster(partitions=4)
    first = cluster.produce("t", b"1", key=b"user-7")
    again = cluster.produce("t", b"2", key=b"user-7")
    assert first.partition() == again.partition()
    assert again.offset() == first.offset() + 1


def test_metadata_over_the_cap_fails_that_partition_only() -> None:
    cluster = InMemoryCluster(offset_metadata_max_bytes=10)
    cluster.create_topic("t", 2)
    consumer, events = _member(cluster)
    consumer.consume(10, 0)
    consumer.commit([Offset("t", 0, 1, "x" * 11), Offset("t", 1, 1, "fine")], asynchronous=False)
    errors = [(r.offset.partition, r.error and r.error.code) for r in events.commits()]
    assert errors == [(0, "OFFSET_METADATA_TOO_LARGE"), (1, None)]
    assert cluster.committed("g", "t", 0).offset is None
    assert cluster.committed("g", "t", 1) == Offset("t", 1, 1, "fine")


def test_commit_faults_fail_the_request_or_chosen_partitions() -> None:
    cluster = _cluster()
    consumer, events = _member(cluster)
    consumer.consume(10, 0)
    offsets = [Offset("t", 0, 3), Offset("t", 1, 4)]
    cluster.faults.fail_commits(1, "REBALANCE_IN_PROGRESS")
    cluster.faults.fail_commits(1, "NOT_COORDINATOR", partitions=[("t", 1)])
    cluster.faults.fail_commits(1, raises=True)
    consumer.commit(offsets, asynchronous=False)
    consumer.commit(offsets, asynchronous=False)
    with pytest.raises(ClientError) as raised:
        consumer.commit(offsets, asynchronous=False)
    assert raised.value.retriable
    codes = [r.error.code if r.error else None for r in events.commits()]
    assert codes == ["REBALANCE_IN_PROGRESS", "REBALANCE_IN_PROGRESS", None, "NOT_COORDINATOR"]
    assert cluster.committed("g", "t", 0).offset == 3
    assert cluster.committed("g", "t", 1).offset is None


def test_async_commit_outcome_comes_with_the_next_consume() -> None:
    cluster = _cluster()
    consumer, events = _member(cluster)
    consumer.consume(10, 0)
    consumer.commit([Offset("t", 0, 0)], asynchronous=True)
    assert events.commits() == []
    consumer.consume(10, 0)
    assert [r.offset.offset for r in events.commits()] == [0]


def test_unreachable_cluster_raises_on_metadata_and_committed() -> None:
    cluster = _cluster()
    consumer, _ = _member(cluster)
    cluster.faults.set_unreachable()
    for call in (lambda: consumer.topics(1), lambda: consumer.committed([("t", 0)], 1)):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.code == "_TRANSPORT"
    cluster.faults.clear()
    assert consumer.topics(1) == {"t"}


def test_a_crashed_member_gets_no_callbacks_and_its_partitions_move() -> None:
    cluster = _cluster()
    a, a_events = _member(cluster)
    b, b_events = _member(cluster)
    for _ in range(3):
        a.consume(10, 0)
        b.consume(10, 0)
    assert a_events.assigned and b_events.assigned
    calls_before = list(a_events.calls)
    cluster.crash(a)
    b.consume(10, 0)
    b.consume(10, 0)
    assert b_events.assigned == {("t", 0), ("t", 1)}
    assert a_events.calls == calls_before
    a.commit([Offset("t", 0, 1)], asynchronous=False)
    assert a_events.commits()[-1].error.code == "UNKNOWN_MEMBER_ID"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError):
        a.consume(10, 0)


def test_an_expired_member_hears_lost_then_rejoins() -> None:
    cluster = _cluster()
    a, a_events = _member(cluster, **{"partition.assignment.strategy": "cooperative-sticky"})
    a.consume(10, 0)
    assert a_events.assigned == {("t", 0), ("t", 1)}
    b, b_events = _member(cluster, **{"partition.assignment.strategy": "cooperative-sticky"})
    cluster.expire(a)
    b.consume(10, 0)
    assert b_events.assigned == {("t", 0), ("t", 1)}  # at once: a holds nothing now
    a.commit([Offset("t", 0, 1)], asynchronous=False)  # a zombie's commit
    assert a_events.commits()[-1].error.code == "UNKNOWN_MEMBER_ID"  # type: ignore[union-attr]
    a.consume(10, 0)
    assert a_events.named("lost") == [[("t", 0), ("t", 1)]]
    for _ in range(3):  # back in the group: the partitions are shared again
        a.consume(10, 0)
        b.consume(10, 0)
    assert len(a_events.assigned) == 1 and len(b_events.assigned) == 1


def test_a_member_that_stops_polling_is_thrown_out() -> None:
    clock = VirtualClock()
    cluster = InMemoryCluster(clock)
    cluster.create_topic("t", 1)
    a, a_events = _member(cluster, "g", **{"max.poll.interval.ms": 1000})
    b, b_events = _member(cluster, "g", **{"max.poll.interval.ms": 1000})
    a.consume(10, 0)
    b.consume(10, 0)
    a.consume(10, 0)
    held = a_events.assigned or b_events.assigned
    assert held == {("t", 0)}
    idle, busy = (a, b) if a_events.assigned else (b, a)
    clock.advance(1.5)
    busy.consume(10, 0)  # the idle one is expired; its partition moves
    busy.consume(10, 0)
    idle_events = a_events if idle is a else b_events
    idle.consume(10, 0)
    assert idle_events.named("error")[0].code == "_MAX_POLL_EXCEEDED"  # type: ignore[attr-defined]
    assert idle_events.named("lost") == [[("t", 0)]]


def test_eager_rebalance_waits_for_every_member_to_revoke() -> None:
    cluster = _cluster()
    a, a_events = _member(cluster)
    a.consume(10, 0)
    b, b_events = _member(cluster)
    for _ in range(3):
        b.consume(10, 0)
    assert b_events.assigned == set()  # a has not revoked yet: nobody gets anything
    a.consume(10, 0)
    b.consume(10, 0)
    assert a_events.named("revoke") == [[("t", 0), ("t", 1)]]
    assert a_events.assigned | b_events.assigned == {("t", 0), ("t", 1)}
    assert not a_events.assigned & b_events.assigned


def test_a_newly_assigned_partition_starts_at_the_committed_offset() -> None:
    cluster = _cluster(partitions=1)
    for i in range(5):
        cluster.produce("t", str(i).encode())
    cluster.committed("g", "t", 0)
    a, _ = _member(cluster)
    assert [m.offset() for m in a.consume(10, 0)] == [0, 1, 2, 3, 4]
    a.commit([Offset("t", 0, 3, "m")], asynchronous=False)
    a.close()
    b, _ = _member(cluster)
    assert [m.offset() for m in b.consume(10, 0)] == [3, 4]
    assert b.watermarks(("t", 0)) == (0, 5)


def test_open_transaction_holds_read_committed_readers_at_its_first_record() -> None:
    cluster = _cluster(partitions=1)
    producer = cluster.transactional_producer({"transactional.id": "tx"})
    producer.init_transactions(1)
    cluster.produce("t", b"before")
    producer.begin_transaction()
    producer.produce("t", b"in-txn")
    producer.flush(0)
    cluster.produce("t", b"after")  # not transactional, but behind the open one
    committed_reader, _ = _member(cluster, "g1")
    uncommitted_reader, _ = _member(cluster, "g2", **{"isolation.level": "read_uncommitted"})
    assert [m.value() for m in committed_reader.consume(10, 0)] == [b"before"]
    assert [m.value() for m in uncommitted_reader.consume(10, 0)] == [
        b"before",
        b"in-txn",
        b"after",
    ]
    assert cluster.last_stable_offset(("t", 0)) == 1
    producer.abort_transaction(1)
    assert [m.value() for m in committed_reader.consume(10, 0)] == [b"after"]
    assert cluster.end_offset(("t", 0)) == 4  # the abort marker takes an offset


def test_a_new_producer_fences_the_old_one_and_aborts_its_transaction() -> None:
    cluster = _cluster(partitions=1)
    old = cluster.transactional_producer({"transactional.id": "tx"})
    old.init_transactions(1)
    old.begin_transaction()
    old.produce("t", b"zombie")
    old.flush(0)
    cluster.crash(old)  # its transaction stays open...
    assert cluster.messages("t", 0) == []
    new = cluster.transactional_producer({"transactional.id": "tx"})
    new.init_transactions(1)  # ... until a new one with its id starts
    assert cluster.last_stable_offset(("t", 0)) == cluster.end_offset(("t", 0))
    assert cluster.messages("t", 0, "read_uncommitted")[0].value() == b"zombie"
    assert cluster.messages("t", 0) == []
    fenced = cluster.transactional_producer({"transactional.id": "fenced"})
    fenced.init_transactions(1)
    cluster.transactional_producer({"transactional.id": "fenced"}).init_transactions(1)
    with pytest.raises(ClientError) as raised:
        fenced.begin_transaction()
    assert (raised.value.code, raised.value.fatal) == ("PRODUCER_FENCED", True)


def test_offsets_sent_to_a_transaction_apply_at_commit_only() -> None:
    cluster = _cluster(partitions=1)
    consumer, _ = _member(cluster)
    consumer.consume(10, 0)
    producer = cluster.transactional_producer({"transactional.id": "tx"})
    producer.init_transactions(1)
    for outcome in ("abort", "commit"):
        producer.begin_transaction()
        producer.produce("t", outcome.encode())
        producer.send_offsets_to_transaction(
            [Offset("t", 0, 7, outcome)], consumer.group_metadata(), 1
        )
        assert cluster.committed("g", "t", 0).offset is None
        if outcome == "abort":
            producer.abort_transaction(1)
        else:
            producer.commit_transaction(1)
    assert cluster.committed("g", "t", 0) == Offset("t", 0, 7, "commit")
    assert [m.value() for m in cluster.messages("t", 0)] == [b"commit"]


def test_a_zombie_members_offsets_cannot_join_a_transaction() -> None:
    cluster = _cluster(partitions=1)
    consumer, _ = _member(cluster)
    consumer.consume(10, 0)
    stale = consumer.group_metadata()
    cluster.expire(consumer)
    producer = cluster.transactional_producer({"transactional.id": "tx"})
    producer.init_transactions(1)
    producer.begin_transaction()
    with pytest.raises(ClientError) as raised:
        producer.send_offsets_to_transaction([Offset("t", 0, 1)], stale, 1)
    assert raised.value.txn_requires_abort
    with pytest.raises(ClientError):
        producer.commit_transaction(1)
    producer.abort_transaction(1)


def test_transaction_commit_fault_requires_abort() -> None:
    cluster = _cluster(partitions=1)
    producer = cluster.transactional_producer({"transactional.id": "tx"})
    producer.init_transactions(1)
    producer.begin_transaction()
    producer.produce("t", b"v")
    cluster.faults.fail_transaction_commits()
    with pytest.raises(ClientError) as raised:
        producer.commit_transaction(1)
    assert raised.value.txn_requires_abort
    producer.abort_transaction(1)
    assert cluster.messages("t", 0) == []


def test_delayed_deliveries_keep_partition_order_and_flush_reports_the_rest() -> None:
    clock = VirtualClock()
    cluster = InMemoryCluster(clock)
    cluster.create_topic("t", 1)
    delivered: list[bytes | None] = []
    producer = cluster.producer({})
    cluster.faults.delay_deliveries(2)
    producer.produce("t", b"slow", on_delivery=lambda _e, m: delivered.append(m.value()))
    cluster.faults.delay_deliveries(0)
    producer.produce("t", b"fast", on_delivery=lambda _e, m: delivered.append(m.value()))
    assert producer.flush(1) == 2  # the slow one holds back the fast one of its partition
    clock.advance(2)
    assert producer.flush(1) == 0
    assert delivered == [b"slow", b"fast"]


def test_delivery_faults_and_the_bounded_queue() -> None:
    cluster = _cluster(partitions=1)
    failed: list[tuple[str, bytes | None]] = []
    producer = cluster.producer(
        {"queue.buffering.max.messages": 3},
        on_failed=lambda error, _t, _k, value: failed.append((error.code, value)),
    )
    cluster.faults.fail_deliveries(1, "NOT_ENOUGH_REPLICAS")
    cluster.faults.fail_deliveries_where(lambda _t, _k, v: v == b"poison", "MSG_SIZE_TOO_LARGE")
    for value in (b"a", b"poison", b"b"):
        producer.produce("t", value)
    with pytest.raises(BufferError):
        producer.produce("t", b"c")
    assert producer.poll(0) == 2  # only the failures are reported
    assert failed == [("NOT_ENOUGH_REPLICAS", b"a"), ("MSG_SIZE_TOO_LARGE", b"poison")]
    assert [m.value() for m in cluster.messages("t", 0)] == [b"b"]


def test_on_idle_lets_a_driver_advance_the_clock() -> None:
    clock = VirtualClock()
    cluster = InMemoryCluster(clock, on_idle=clock.advance)
    cluster.create_topic("t", 1)
    producer = cluster.producer({})
    cluster.faults.delay_deliveries(0.5)
    producer.produce("t", b"v")
    assert producer.flush(1.0) == 0
    assert clock() == 1.0


def test_seek_on_an_unassigned_partition_and_closed_consumers() -> None:
    cluster = _cluster()
    consumer, _ = _member(cluster)
    with pytest.raises(ClientError):
        consumer.seek(("t", 0), 0)  # not assigned until the first consume
    consumer.consume(1, 0)
    consumer.seek(("t", 0), 0)
    consumer.close()
    with pytest.raises(RuntimeError):
        consumer.consume(1, 0)


def test_mixed_strategies_cannot_share_a_group() -> None:
    cluster = _cluster()
    _member(cluster, **{"partition.assignment.strategy": "range"})
    with pytest.raises(ClientError) as raised:
        _member(cluster, **{"partition.assignment.strategy": "cooperative-sticky"})
    assert raised.value.code == "INCONSISTENT_GROUP_PROTOCOL"
