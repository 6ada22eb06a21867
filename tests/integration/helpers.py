"""Shared pieces of the integration tests: workloads, committed offsets, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from parafka import ParallelConsumer
from parafka.testing import Broker, KafkaBroker


def group() -> str:
    """A fresh consumer group's name."""
    return f"g-{uuid.uuid4().hex[:10]}"


def produce_keyed(broker: Broker, topic: str, count: int, keys: int) -> None:
    """`count` records, key k{i % keys}, value = str(i)."""
    broker.produce(topic, [(f"k{i % keys}".encode(), str(i).encode()) for i in range(count)])


def committed(broker: Broker, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none)."""
    found = committed_partitions(broker, group, topic, partitions)
    return {tp.partition: tp.offset for tp in found}


def committed_partitions(
    broker: Broker, group: str, topic: str, partitions: int
) -> list[TopicPartition]:
    """The group's commits (offset and metadata) per partition, asked again for up to 30 s
    while the broker answers with an error (a new group's coordinator may be moving:
    NOT_COORDINATOR on Apache Kafka, which the client flags as not retriable)."""
    consumer = Consumer(broker.client_config(**{"group.id": group}))
    deadline = time.monotonic() + 30
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        while True:
            try:
                return list(consumer.committed(wanted, timeout=10))
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def end_offsets(broker: Broker, topic: str, partitions: int, records: int) -> dict[int, int]:
    """The end offset of each partition of a topic holding `records` records (read back:
    the local broker answers the latest offset with the end of the batch written last,
    which lags behind the log end when two producers wrote the partition at once)."""
    counts = dict.fromkeys(range(partitions), 0)
    for message in broker.consume_all(topic, expected=records, timeout=10):
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        counts[partition] = max(counts[partition], offset + 1)
    return counts


def offsets_read(messages: list[Any]) -> str:
    """What a short read got, per partition: its offsets' span and the offsets missing
    inside it (a hole says a record was stepped over or never stored, not never sent)."""
    by_partition: dict[int, set[int]] = {}
    for message in messages:
        by_partition.setdefault(message.partition(), set()).add(message.offset())
    parts = []
    for partition, offsets in sorted(by_partition.items()):
        low, high = min(offsets), max(offsets)
        holes = sorted(set(range(low, high + 1)) - offsets)
        parts.append(f"p{partition} {low}-{high}" + (f" missing {holes[:20]}" if holes else ""))
    return "; ".join(parts) or "nothing"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# Under KIP-848's consumer protocol (`group.protocol=consumer`) the broker owns the session
# timeout, the heartbeat interval and the assignor: librdkafka refuses these client settings.
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")


def group_config(**extra: Any) -> dict[str, Any]:
    """Quick group settings (a 6 s session, 0.5 s heartbeats) plus `extra`, less the
    classic-protocol settings when `extra` asks for `group.protocol=consumer`."""
    config = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **extra}
    if config.get("group.protocol") == "consumer":
        for name in CLASSIC_ONLY:
            config.pop(name, None)
    return config


def consumer(
    broker: Broker, handler: Callable[..., Any], topic: str, group: str, **kwargs: Any
) -> ParallelConsumer:
    """A ParallelConsumer on the test broker with quick group settings."""
    extra = kwargs.pop("kafka_config", {})
    return ParallelConsumer(
        handler,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        topics=[topic],
        kafka_config=group_config(**extra),
        **kwargs,
    )


def share_group(broker: KafkaBroker) -> str:
    """A new share group that starts at the log start (`KafkaBroker.new_share_group`)."""
    return broker.new_share_group()


def written_lines(path: Path) -> list[str]:
    """The complete lines in a file that handlers append to (none if it is missing). A
    reader can see part of a write in progress: a last line without its newline is left
    for the next read."""
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]
