"""One behaviour suite for the Kafka seam, run against the in-memory cluster and against
confluent-kafka on the local broker and on Apache Kafka: what the fake promises, the real
client does too (Apache Kafka is the reference where the brokers differ)."""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from collections.abc import Iterator

import pytest

from parafka.core.seam import TP, ClientError, CommitResult, Offset
from parafka.testing import Broker
from tests.contract.backends import (
    Backend,
    BrokerBackend,
    Member,
    MemoryBackend,
    drive,
    join,
    produce,
)


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("broker", marks=pytest.mark.integration),
        pytest.param("kafka", marks=[pytest.mark.integration, pytest.mark.kafka]),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    broker: Broker = request.getfixturevalue(
        "local_broker" if request.param == "broker" else "kafka_broker"
    )
    yield BrokerBackend(broker)


def _close(*members: Member) -> None:
    for member in members:
        member.consumer.close()


def _keyed(count: int, keys: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"k{i % keys}".encode(), str(i).encode()) for i in range(count)]


def test_records_come_in_offset_order_per_partition(backend: Backend) -> None:
    topic = backend.new_topic(partitions=3)
    delivered = produce(backend, topic, _keyed(30, keys=6))
    member = join(backend, [topic], "g-order")
    try:
        drive(backend, [member], lambda: len(member.records) >= 30, "30 records")
    finally:
        _close(member)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for message in member.records:
        by_partition[message.partition()].append(message.offset())
    expected: dict[int, list[int]] = defaultdict(list)
    for record in delivered:
        expected[record.partition].append(record.offset)
    assert dict(by_partition) == {p: sorted(o) for p, o in expected.items()}
    by_key: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for message in member.records:
        by_key[message.key()].append(message.value())
    for key, values in by_key.items():  # one key, one partition: produce order kept
        assert values == [v for k, v in _keyed(30, keys=6) if k == key]


def test_sync_commit_reports_and_committed_reads_back(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    produce(backend, topic, _keyed(10, keys=1))
    member = join(backend, [topic], "g-commit")
    try:
        drive(backend, [member], lambda: len(member.records) >= 10, "10 records")
        offset = Offset(topic, 0, 7, "seven-and-some")
        member.consumer.commit([offset], asynchronous=False)
        reported = member.events.commits()  # reported before commit() returned
        assert [(r.offset.topic, r.offset.partition, r.offset.offset) for r in reported] == [
            (topic, 0, 7)
        ]
        assert all(r.error is None for r in reported)
        (back,) = member.consumer.committed([(topic, 0)], timeout=10)
    finally:
        _close(member)
    assert (back.topic, back.partition, back.offset) == (topic, 0, 7)
    if back.metadata == "" and not backend.keeps_metadata:
        pytest.skip("the local broker drops commit metadata (offset checked, metadata not)")
    assert back.metadata == "seven-and-some"


def test_read_fetches_a_partition_to_its_end_apart_from_the_member(backend: Backend) -> None:
    """read() (the retry topic's fence rebuild) sees a partition from an offset to its
    end, assigned or not, and leaves the member's own fetching as it was."""
    topic, other = backend.new_topic(partitions=2), backend.new_topic(partitions=1)
    delivered = produce(backend, topic, _keyed(20, keys=4))
    produce(backend, other, _keyed(3, keys=1))
    member = join(backend, [other], "g-read")
    try:
        drive(backend, [member], lambda: len(member.records) >= 3, "3 records")
        starts = {}
        for partition in (0, 1):
            ours = [d for d in delivered if d.partition == partition]
            starts[(topic, partition)] = ours[2].offset if len(ours) > 2 else 0
        read = member.consumer.read(starts, timeout=10)
        for (_, partition), start in starts.items():
            ours = [d.value for d in delivered if d.partition == partition and d.offset >= start]
            assert [m.value() for m in read if m.partition() == partition] == ours
        assert member.consumer.read({(topic, 0): 10_000, (topic, 1): 10_000}, timeout=10) == []
        assert member.consumer.read({}, timeout=10) == []
        produce(backend, other, _keyed(2, keys=1))
        drive(backend, [member], lambda: len(member.records) >= 5, "2 more records")
    finally:
        _close(member)
    assert [m.topic() for m in member.records] == [other] * 5


def test_async_commit_is_reported_by_a_later_consume(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    produce(backend, topic, _keyed(3, keys=1))
    member = join(backend, [topic], "g-async")
    try:
        drive(backend, [member], lambda: len(member.records) >= 3, "3 records")
        member.consumer.commit([Offset(topic, 0, 3)], asynchronous=True)
        drive(backend, [member], lambda: bool(member.events.commits()), "the commit outcome")
        results: list[CommitResult] = member.events.commits()
    finally:
        _close(member)
    assert [(r.offset.offset, r.error) for r in results] == [(3, None)]


def test_a_paused_partition_yields_nothing_until_resumed(backend: Backend) -> None:
    topic = backend.new_topic(partitions=2)
    member = join(backend, [topic], "g-pause")
    try:
        drive(backend, [member], lambda: len(member.events.assigned) == 2, "the assignment")
        paused: TP = (topic, 0)
        member.consumer.pause([paused])
        for partition in (0, 1):
            _produce_to(backend, topic, partition, partitions=2, count=5)

        def partition_records(p: int) -> list[int]:
            return [m.offset() for m in member.records if m.partition() == p]

        drive(backend, [member], lambda: len(partition_records(1)) >= 5, "the unpaused records")
        assert partition_records(0) == []
        member.consumer.resume([paused])
        drive(backend, [member], lambda: len(partition_records(0)) >= 5, "the resumed records")
    finally:
        _close(member)
    assert partition_records(0) == sorted(partition_records(0))


def _keys_for(partition: int, partitions: int, count: int) -> list[bytes]:
    """`count` keys that land in `partition` under CRC32 partitioning (librdkafka's
    default for keyed records, and the in-memory cluster's)."""
    keys = (f"key-{i}".encode() for i in itertools.count())
    return list(
        itertools.islice((k for k in keys if zlib.crc32(k) % partitions == partition), count)
    )


def _produce_to(backend: Backend, topic: str, partition: int, partitions: int, count: int) -> None:
    records = [(key, b"x") for key in _keys_for(partition, partitions, count)]
    delivered = produce(backend, topic, records)
    assert {d.partition for d in delivered} == {partition}


def test_seek_moves_the_next_record_and_needs_an_assigned_partition(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    produce(backend, topic, _keyed(10, keys=1))
    member = join(backend, [topic], "g-seek")
    try:
        drive(backend, [member], lambda: len(member.records) >= 10, "10 records")
        member.consumer.seek((topic, 0), 3)
        member.records.clear()
        drive(backend, [member], lambda: len(member.records) >= 7, "the records after 3")
        with pytest.raises(ClientError):
            member.consumer.seek((topic, 5), 0)
    finally:
        _close(member)
    assert [m.offset() for m in member.records] == list(range(3, 10))


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_second_member_takes_half_the_partitions(backend: Backend, strategy: str) -> None:
    topic = backend.new_topic(partitions=4)
    group = f"g-split-{strategy}"
    config = {"partition.assignment.strategy": strategy}
    first = join(backend, [topic], group, **config)
    second: Member | None = None
    try:
        drive(backend, [first], lambda: len(first.events.assigned) == 4, "the first assignment")
        first.events.clear()
        second = join(backend, [topic], group, **config)
        both = [first, second]
        drive(
            backend,
            both,
            lambda: len(first.events.assigned) == 2 and len(second.events.assigned) == 2,
            "two partitions each",
            timeout=60,
        )
        mine, theirs = set(first.events.assigned), set(second.events.assigned)
        told = first.events.named("assign")
        revoked = [set(tps) for tps in first.events.named("revoke")]  # type: ignore[call-overload]
    finally:
        _close(first, *([second] if second else []))
    assert mine.isdisjoint(theirs)
    assert revoked, "the first member was not asked to revoke anything"
    if strategy == "range":  # eager: everything back, then a new assignment
        assert revoked[0] == {(topic, p) for p in range(4)}
        assert told[-1] == sorted(mine)
    else:  # cooperative: only what moves is revoked; what stays is never re-assigned
        assert set().union(*revoked) == theirs
        assert all(not tps for tps in told)


def test_read_committed_sees_committed_transactions_only(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    producer = backend.kafka.transactional_producer(
        backend.config(**{"transactional.id": f"tx-{topic}"})
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for value in (b"c1", b"c2"):
        producer.produce(topic, value, b"k")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", b"k")
    producer.flush(30)
    producer.abort_transaction(30)
    produce(backend, topic, [(b"k", b"end")])
    member = join(backend, [topic], "g-txn", **{"isolation.level": "read_committed"})
    try:
        drive(backend, [member], lambda: b"end" in member.values(), "the record after them")
    finally:
        _close(member)
    values = member.values()
    assert values[:2] == [b"c1", b"c2"]
    if b"aborted" in values and not backend.hides_aborts:
        pytest.skip("the local broker shows aborted records to read_committed readers")
    assert values == [b"c1", b"c2", b"end"]


def test_a_producer_with_on_failed_reports_failures_only(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    failed: list[tuple[str, str, bytes | None]] = []
    producer = backend.kafka.producer(
        backend.config(**{"message.timeout.ms": 5000}),
        on_failed=lambda error, t, _key, value: failed.append((error.code, t, value)),
    )
    for i in range(5):
        producer.produce(topic, str(i).encode())
    producer.produce("not a valid topic name!", b"lost")
    deadline_rounds = 600
    while producer.flush(0.05) and deadline_rounds:
        backend.tick()
        deadline_rounds -= 1
    assert [(t, v) for _code, t, v in failed] == [("not a valid topic name!", b"lost")]
    assert all(code for code, _t, _v in failed)


def test_produce_many_produces_all_but_what_the_client_refuses(backend: Backend) -> None:
    topic = backend.new_topic(partitions=1)
    producer = backend.kafka.producer(backend.config(**{"message.max.bytes": 2000}))
    records = [
        (topic, b"a", None, None),
        (topic, b"x" * 5000, None, None),  # over message.max.bytes: refused
        (topic, b"c", b"k", [("h", b"1")]),
    ]
    refused = producer.produce_many(records)
    assert [at for at, _ in refused] == [1]
    assert refused[0][1].code == "MSG_SIZE_TOO_LARGE"
    rounds = 600
    while producer.flush(0.05) and rounds:
        backend.tick()
        rounds -= 1
    member = join(backend, [topic], "g-many")
    try:
        drive(backend, [member], lambda: len(member.records) >= 2, "2 records")
    finally:
        _close(member)
    assert [(m.value(), m.key()) for m in member.records] == [(b"a", None), (b"c", b"k")]
    assert [dict(m.headers() or []) for m in member.records] == [{}, {"h": b"1"}]
