"""The loops people write today, run beside parafka by the demo and by benchmarks/.

- `plain_loop`: consume(1000), call the handler on each message in turn, commit.
- `batch_threads_loop`: consume(C), one thread per record, join them all, commit: the
  common fix, where every batch waits for its slowest record.

Both take plain client settings (`bootstrap.servers` and the rest, no group) and commit
the consumer's position after each batch, which is right because every record returned so
far is done by then.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, Message


def _group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _baseline_consumer(config: Mapping[str, Any], topic: str, group: str) -> Consumer:
    consumer = Consumer(
        {
            **config,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    return consumer


def _commit_position(consumer: Consumer) -> None:
    """Commit where the consumer stands: right when every record returned so far is done."""
    offsets = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
    if offsets:
        consumer.commit(offsets=offsets, asynchronous=True)


def plain_loop(
    config: Mapping[str, Any],
    topic: str,
    handler: Callable[[Message], object],
    count: int,
    timeout: float = 600.0,
    group: str | None = None,
) -> int:
    """The plain serial loop: consume(1000), call the handler on each message, commit.

    Stops after `count` records; returns how many were handled.
    """
    consumer = _baseline_consumer(config, topic, group or _group("parafka-plain"))
    handled, deadline = 0, time.monotonic() + timeout
    try:
        while handled < count and time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.5)
            for message in batch:
                if message.error() is None:
                    handler(message)
                    handled += 1
                    if handled == count:
                        break
            if batch:
                _commit_position(consumer)
    finally:
        consumer.close()
    return handled


def batch_threads_loop(
    config: Mapping[str, Any],
    topic: str,
    handler: Callable[[Message], object],
    count: int,
    concurrency: int,
    timeout: float = 600.0,
    group: str | None = None,
) -> int:
    """The common fix: consume(C), one thread per record, join them all, commit, repeat.

    Stops after `count` records; returns how many were handled.
    """
    consumer = _baseline_consumer(config, topic, group or _group("parafka-batch"))
    handled, deadline = 0, time.monotonic() + timeout
    try:
        while handled < count and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(concurrency, 0.5) if m.error() is None]
            threads = [threading.Thread(target=handler, args=(m,)) for m in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            handled += len(batch)
            if batch:
                _commit_position(consumer)
    finally:
        consumer.close()
    return handled
