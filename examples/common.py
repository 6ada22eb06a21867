"""Kafka plumbing the examples share: topics, producing, reading a topic back.

Everything takes `bootstrap_servers` (and optional client settings), so the examples run
against the local broker or a real cluster alike.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

# A new consumer group gets its partitions in about 3 s with these instead of about 23 s
# (the client's default session timeout is 45 s); fine for real clusters too.
QUICK_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def unique(prefix: str) -> str:
    """A topic or group name no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    config: Mapping[str, Any] | None = None,
    timeout: float = 15.0,
) -> None:
    """Create topics (an existing one is left as it is)."""
    admin = AdminClient({**(config or {}), "bootstrap.servers": bootstrap_servers})
    requests = [NewTopic(name, num_partitions=partitions) for name in names]
    futures = admin.create_topics(requests, request_timeout=timeout, operation_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout + 1.0)
        except Exception as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise RuntimeError(
                f"creating topic {name!r} on {bootstrap_servers} failed: {exc}"
            ) from exc


class Sender:
    """A producer that raises if any record was not delivered (nothing lost silently)."""

    def __init__(self, bootstrap_servers: str, config: Mapping[str, Any] | None = None) -> None:
        settings = {"linger.ms": 5, **(config or {}), "bootstrap.servers": bootstrap_servers}
        self._producer = Producer(settings)
        self._errors: list[KafkaError] = []
        self.sent = 0

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._errors.append(error)

    def send(self, topic: str, value: bytes, key: bytes | None = None, timestamp: int = 0) -> None:
        """Queue one record; `timestamp` in ms since the epoch (0: the producer's clock)."""
        while True:
            try:
                self._producer.produce(
                    topic, value, key, timestamp=timestamp, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
        self.sent += 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)  # serve delivery reports as we go

    def flush(self, timeout: float = 30.0) -> None:
        unsent = self._producer.flush(timeout)
        if unsent:
            raise TimeoutError(f"{unsent} of {self.sent} records not acknowledged in {timeout} s")
        if self._errors:
            raise RuntimeError(
                f"{len(self._errors)} of {self.sent} records failed; first: {self._errors[0]}"
            )


def produce(
    bootstrap_servers: str,
    topic: str,
    items: Iterable[tuple[bytes | None, bytes]],
    config: Mapping[str, Any] | None = None,
) -> int:
    """Produce (key, value) pairs and wait until all are acknowledged; returns the count."""
    sender = Sender(bootstrap_servers, config)
    for key, value in items:
        sender.send(topic, value, key)
    sender.flush()
    return sender.sent


def read_topic(
    bootstrap_servers: str,
    topic: str,
    minimum: int,
    timeout: float = 60.0,
    settle: float = 1.0,
    config: Mapping[str, Any] | None = None,
) -> list[Message]:
    """Every record of `topic` from the beginning: waits (up to `timeout`) for at least
    `minimum`, then goes on until nothing new came for `settle` seconds, so records beyond
    the expected number (duplicates) show up too."""
    consumer = Consumer(
        {
            **(config or {}),
            "bootstrap.servers": bootstrap_servers,
            "group.id": unique("examples-read"),  # required; never joined, nothing committed
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # where offset 0 is gone (retention)
        }
    )
    received: list[Message] = []
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = metadata.topics[topic].partitions
        # From offset 0, not the broker's "earliest": the local broker answers that with the
        # batch stored first, which two producers at once (--processes 2) can make offset 10.
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while True:
            now = time.monotonic()
            if len(received) >= minimum and now - last_new >= settle:
                break
            if now >= deadline:
                break
            batch = consumer.consume(1000, timeout=0.2)
            good = [m for m in batch if m.error() is None]
            if good:
                received.extend(good)
                last_new = time.monotonic()
    finally:
        consumer.close()
    return received


def on_cluster(args: Any, run: Callable[[Any, str], int]) -> int:
    """`run(args, bootstrap_servers)` on a throwaway local broker (`--local`) or on the
    cluster given with `--bootstrap-servers`; exit code 2 with the fix when neither is."""
    if args.local:
        from parafka.testing import LocalBroker

        with LocalBroker() as broker:
            return run(args, broker.bootstrap_servers)
    if not args.bootstrap_servers:
        print("error: pass --bootstrap-servers HOST:PORT, or --local for a local broker")
        return 2
    return run(args, args.bootstrap_servers)
