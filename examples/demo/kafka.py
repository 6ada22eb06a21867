"""Kafka plumbing of the demo: where it runs (`Stage`), fast producing, topics and groups.

The same code serves the local broker and any cluster given with `-b`: topics and groups
get unique `parafka-demo-*` names, and on a cluster of yours they are deleted at the end.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from parafka import ParallelConsumer
from parafka.core.errors import BrokerUnreachable
from parafka.kafka.config import admin_config, consumer_config, producer_config

# (partition or None for the key's partition, key, value): one record to produce.
Item = tuple[int | None, bytes | None, bytes]

# A new group gets its partitions after about half its session timeout on the local broker
# (measured: 3.1 s at 6000 ms, 1.1 s at 1000 ms); it holds every fetch for the whole
# fetch.wait.max.ms even when records arrive, so a low wait keeps latency low there.
LOCAL_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 3000,
    "heartbeat.interval.ms": 300,
    "fetch.wait.max.ms": 10,
    "fetch.queue.backoff.ms": 10,
}
# Apache Kafka refuses session timeouts under group.min.session.timeout.ms (6 s by default).
CLUSTER_SETTINGS: dict[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "fetch.queue.backoff.ms": 10,
}
_TIMEOUT = 15.0

log = logging.getLogger("parafka.demo")


@dataclass(frozen=True)
class Produced:
    """What a produce call wrote: how many records, and each partition's end offset."""

    count: int
    ends: dict[int, int]


def produce(
    bootstrap_servers: str,
    topic: str,
    items: Iterable[Item],
    config: Mapping[str, Any] | None = None,
) -> Produced:
    """Produce fast (large batches, linger) and wait until every record is acknowledged.

    Raises if any record failed or was not acknowledged within two minutes.
    """
    settings = producer_config(bootstrap_servers, config or {})
    settings.update(
        {
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 512 * 1024,
        }
    )
    producer = Producer(settings)
    failures: list[KafkaError] = []
    ends: dict[int, int] = {}

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error)
            return
        partition, offset = message.partition(), message.offset()
        if partition is not None and offset is not None and offset >= ends.get(partition, 0):
            ends[partition] = offset + 1

    count = 0
    send = producer.produce
    for partition, key, value in items:
        while True:
            try:
                send(
                    topic,
                    value,
                    key,
                    -1 if partition is None else partition,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.05)
        count += 1
    unsent = producer.flush(120)
    if unsent or failures:
        raise RuntimeError(
            f"producing to {topic!r}: {unsent} of {count} unacknowledged, "
            f"{len(failures)} failed (first: {failures[0] if failures else '-'})"
        )
    return Produced(count, ends)


@dataclass
class Stage:
    """Where the scenes run: the cluster, the client settings, the size of the show."""

    bootstrap_servers: str
    settings: dict[str, Any]  # for every client: the demo's defaults under the user's -X
    quick: bool = False
    local: bool = True
    topics: list[str] = field(default_factory=list)  # created by the demo (to delete)
    groups: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls, bootstrap_servers: str, user: Mapping[str, Any], quick: bool, local: bool
    ) -> Stage:
        defaults = LOCAL_SETTINGS if local else CLUSTER_SETTINGS
        return cls(bootstrap_servers, {**defaults, **user}, quick, local)

    def check_reachable(self, timeout: float = _TIMEOUT) -> None:
        """BrokerUnreachable (one line) if the cluster does not answer."""
        try:
            self._admin().list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnreachable(
                f"cannot reach Kafka at {self.bootstrap_servers} within {timeout:g} s "
                f"({exc.args[0] if exc.args else exc}); check -b and the -X security settings"
            ) from None

    def _admin(self) -> AdminClient:
        # Quiet: what goes wrong is raised; librdkafka's notices would only add noise.
        return AdminClient({**admin_config(self.bootstrap_servers, self.settings), "log_level": 3})

    def topic(self, name: str, partitions: int) -> str:
        """Create a topic with a name no other run uses; returns the name."""
        topic = f"parafka-demo-{name}-{uuid.uuid4().hex[:8]}"
        admin = self._admin()  # kept until the result is in: destroying it fails the future
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions)],
            request_timeout=_TIMEOUT,
            operation_timeout=_TIMEOUT,
        )
        futures[topic].result(timeout=_TIMEOUT + 1)
        self.topics.append(topic)
        return topic

    def group(self, name: str) -> str:
        group = f"parafka-demo-{name}-{uuid.uuid4().hex[:8]}"
        self.groups.append(group)
        return group

    def produce(self, topic: str, items: Iterable[Item]) -> Produced:
        return produce(self.bootstrap_servers, topic, items, self.settings)

    def consumer_settings(self) -> dict[str, Any]:
        """Settings for a plain `confluent_kafka.Consumer` (the baselines), group not set.

        parafka stores its own offsets; a plain loop that commits with `commit()` relies on
        the client storing them, so that setting is left to the client's default.
        """
        settings = consumer_config(self.bootstrap_servers, "-", self.settings)
        for key in ("group.id", "enable.auto.offset.store"):
            settings.pop(key)
        return settings

    def producer_settings(self) -> dict[str, Any]:
        return producer_config(self.bootstrap_servers, self.settings)

    def parallel(
        self, handler: Callable[..., Any] | str, topic: str, group: str, **options: Any
    ) -> ParallelConsumer:
        """A ParallelConsumer on `topic` in a fresh group named after `group`."""
        return ParallelConsumer(
            handler,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group(group),
            topics=topic,
            kafka_config=self.settings,
            **options,
        )

    def cleanup(self) -> list[str]:
        """Delete the demo's topics and groups from a cluster of yours (not the local
        broker, which goes away anyway); returns what could not be deleted."""
        if self.local or not (self.topics or self.groups):
            return []
        admin = self._admin()
        left: list[str] = []
        futures: dict[str, Any] = {}
        if self.groups:
            futures.update(admin.delete_consumer_groups(self.groups, request_timeout=_TIMEOUT))
        if self.topics:
            futures.update(admin.delete_topics(self.topics, operation_timeout=_TIMEOUT))
        for name, future in futures.items():
            try:
                future.result(timeout=_TIMEOUT + 1)
            except Exception as exc:
                log.debug("could not delete %s: %s", name, exc)
                left.append(name)
        return left
