"""`async def` handlers end to end: picked automatically, ordered, committed, retried."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict

from parafka import Record, RetryPolicy
from parafka.testing import LocalBroker

from .helpers import committed, consumer, end_offsets, group, produce_keyed

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, jitter=0)


def test_async_handler_runs_on_the_event_loop_in_key_order(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("aio", partitions=4), group()
    produce_keyed(broker, topic, 2000, keys=400)
    seen: dict[tuple[int, bytes | None], list[int]] = defaultdict(list)
    threads: set[str] = set()
    running, peak = [0], [0]
    rng = random.Random(11)

    async def handle(record: Record) -> None:
        threads.add(threading.current_thread().name)
        running[0] += 1  # one loop thread: no lock needed
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(rng.uniform(0.005, 0.02))
        running[0] -= 1
        seen[(record.partition, record.key)].append(record.offset)

    pc = consumer(broker, handle, topic, gid, ordering="key", concurrency=200)
    assert pc.settings.executor == "async"  # chosen because the handler is a coroutine function
    stats = pc.run(until_idle=1.5)

    assert stats.processed == 2000
    assert sum(len(offsets) for offsets in seen.values()) == 2000
    for offsets in seen.values():
        assert offsets == sorted(offsets)
    assert threads == {"parafka-asyncio"}
    assert 50 < peak[0] <= 200  # many keys in flight at once, never more than asked
    assert committed(broker, gid, topic, 4) == end_offsets(broker, topic, 4, 2000)


def test_a_failing_async_handler_is_retried(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("aio-retry", partitions=2), group()
    produce_keyed(broker, topic, 100, keys=10)
    attempts: dict[tuple[int, int], list[int]] = defaultdict(list)

    async def handle(record: Record) -> None:
        await asyncio.sleep(0.001)
        attempts[(record.partition, record.offset)].append(record.attempt)
        if record.attempt == 1:
            raise ConnectionError("flaky service")

    stats = consumer(broker, handle, topic, gid, concurrency=50, retry=FAST_RETRY).run(
        until_idle=1.5
    )
    assert stats.processed == 100
    assert stats.retried == 100
    assert len(attempts) == 100
    assert all(tries == [1, 2] for tries in attempts.values())
    assert committed(broker, gid, topic, 2) == end_offsets(broker, topic, 2, 100)
