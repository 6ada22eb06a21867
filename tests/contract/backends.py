"""The two backends of the seam's contract suite, and a driver that works on both.

The in-memory cluster is driven by advancing its virtual clock between polls; the real
brokers (the local one and Apache Kafka) by waiting for conditions with a wall-clock
deadline. Tests written against `Backend` cannot tell which one they run on, except through
`keeps_metadata` and `hides_aborts`, which name what the local broker is known not to do.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from parafka.core.seam import ClientError, Consumer, Kafka, Message
from parafka.testing import Broker, LocalBroker
from parafka.testing.memory import InMemoryCluster, RecordingEvents, VirtualClock

STEP = 0.05  # seconds per poll: virtual on the in-memory cluster, a wait on the real one


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Backend:
    """What a contract test needs of a cluster."""

    name: str
    kafka: Kafka
    real_time: bool
    keeps_metadata = True  # commit metadata is read back as it was committed
    hides_aborts = True  # read_committed readers never see an aborted transaction's records

    def new_topic(self, partitions: int = 1) -> str:
        raise NotImplementedError

    def config(self, **extra: Any) -> dict[str, Any]:
        raise NotImplementedError

    def tick(self) -> None:
        """Let time pass between two rounds of polling."""

    def consumer_config(self, group: str, **extra: Any) -> dict[str, Any]:
        return self.config(
            **{
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **extra,
            }
        )


class MemoryBackend(Backend):
    name = "memory"
    real_time = False

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.cluster = InMemoryCluster(self.clock)
        self.kafka = self.cluster
        self._names = itertools.count()

    def new_topic(self, partitions: int = 1) -> str:
        name = f"t-{next(self._names)}"
        self.cluster.create_topic(name, partitions)
        return name

    def config(self, **extra: Any) -> dict[str, Any]:
        return dict(extra)

    def tick(self) -> None:
        self.clock.advance(STEP)


class BrokerBackend(Backend):
    """confluent-kafka on a real broker: `broker` (the local one) or `kafka` (Apache Kafka)."""

    real_time = True

    def __init__(self, broker: Broker) -> None:
        from parafka.kafka.confluent import ConfluentKafka

        self.broker = broker
        self.kafka = ConfluentKafka()
        local = isinstance(broker, LocalBroker)
        self.name = "broker" if local else "kafka"
        self.keeps_metadata = self.hides_aborts = not local

    def new_topic(self, partitions: int = 1) -> str:
        return self.broker.new_topic(partitions=partitions)

    def config(self, **extra: Any) -> dict[str, Any]:
        return dict(self.broker.client_config(**extra))


@dataclass
class Member:
    """A consumer under test with what it received and was told."""

    consumer: Consumer
    events: RecordingEvents
    records: list[Message] = field(default_factory=list)

    def values(self) -> list[bytes | None]:
        return [m.value() for m in self.records]


def join(backend: Backend, topics: Sequence[str], group: str, **extra: Any) -> Member:
    events = RecordingEvents()
    consumer = backend.kafka.consumer(backend.consumer_config(group, **extra), events)
    consumer.subscribe(list(topics))
    return Member(consumer, events)


def drive(
    backend: Backend,
    members: Sequence[Member],
    condition: Callable[[], bool],
    what: str,
    timeout: float = 30.0,
) -> None:
    """Poll every member in turn until `condition()` holds; fail after `timeout` seconds
    (of wall-clock time on the real broker, of virtual time in memory)."""
    deadline = time.monotonic() + timeout
    rounds = int(timeout / STEP)
    for _ in range(rounds if not backend.real_time else 1_000_000):
        for member in members:
            member.records.extend(member.consumer.consume(100, STEP if backend.real_time else 0))
        if condition():
            return
        backend.tick()
        if backend.real_time and time.monotonic() > deadline:
            break
    raise AssertionError(f"{backend.name}: timed out after {timeout} s waiting for {what}")


def produce(
    backend: Backend, topic: str, pairs: Sequence[tuple[bytes | None, bytes | None]]
) -> list[Delivered]:
    """Produce (key, value) pairs through the seam's producer; what was delivered, where."""
    delivered: list[Delivered] = []
    failures: list[ClientError] = []

    def on_delivery(error: ClientError | None, message: Message) -> None:
        if error is not None:
            failures.append(error)
            return
        delivered.append(
            Delivered(
                message.topic(),
                message.partition(),
                message.offset(),
                message.key(),
                message.value(),
            )
        )

    producer = backend.kafka.producer(backend.config(**{"linger.ms": 5}))
    for key, value in pairs:
        producer.produce(topic, value, key, on_delivery=on_delivery)
    assert producer.flush(30) == 0, f"{backend.name}: records left undelivered"
    assert not failures, f"{backend.name}: deliveries failed: {failures}"
    return delivered
