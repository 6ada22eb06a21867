"""One behaviour suite for every executor (STYLE.md): ordering, failure and retry, poison
records, shutdown and rebalance, run against thread, asyncio and process executors.

Handlers report each processed record as an output record, so the same checks read the
output topic whatever executor (or process) did the work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest

from parafka import ParallelConsumer, RecordFailed, RetryPolicy
from parafka.testing import Broker

from .helpers import (
    committed,
    end_offsets,
    group_config,
    offsets_read,
    produce_keyed,
    wait_until,
)

EXECUTORS = ["thread", "async", "process"]
HANDLERS = "tests.handlers.behaviour"
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, jitter=0)

pytestmark = pytest.mark.any_broker


def handler(executor: str, name: str) -> Any:
    """The handler named `name` for `executor`: a target string for processes, the async
    variant for asyncio, the function itself for threads."""
    from tests.handlers import behaviour

    if executor == "process":
        return f"{HANDLERS}:{name}"
    return getattr(behaviour, f"{name}_async" if executor == "async" else name)


def make(broker: Broker, executor: str, name: str, topic: str, out: str, **kw: Any):  # type: ignore[no-untyped-def]
    return ParallelConsumer(
        handler(executor, name),
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"g-{uuid.uuid4().hex[:10]}",
        topics=[topic],
        output_topic=out,
        executor=executor,
        workers=2 if executor == "process" else None,
        kafka_config=group_config(),
        **kw,
    )


def reports(broker: Broker, out: str, expected: int) -> list[dict[str, Any]]:
    messages = broker.consume_all(out, expected=expected)
    got = len(messages)
    assert got == expected, f"read {got} of {expected} outputs: {offsets_read(messages)}"
    return [json.loads(m.value()) for m in messages]


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("ordering", ["key", "partition"])
def test_order_holds_per_shard(broker: Broker, executor: str, ordering: str) -> None:
    topic, out = broker.new_topic("bh", 4), broker.new_topic("bh-out", 4)
    produce_keyed(broker, topic, 600, keys=12)
    pc = make(broker, executor, "record_it", topic, out, ordering=ordering, concurrency=16)
    stats = pc.run(until_idle=1.5)
    assert stats.processed == 600
    seen = reports(broker, out, 600)
    assert sorted((r["p"], r["o"]) for r in seen) == sorted({(r["p"], r["o"]) for r in seen})
    assert len(seen) == 600
    per_shard: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for r in seen:  # outputs of one key land in one output partition, in production order
        per_shard[(r["p"], r["k"])].append(r["o"])
    for offsets in per_shard.values():
        assert offsets == sorted(offsets)
    if executor == "process":
        assert len({r["pid"] for r in seen}) == 2  # both workers did some of it


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failures_are_retried_with_the_attempt_visible(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 2), broker.new_topic("bh-out", 1)
    produce_keyed(broker, topic, 100, keys=5)
    pc = make(broker, executor, "fail_first_attempt", topic, out, retry=FAST_RETRY)
    stats = pc.run(until_idle=1.5)
    seen = reports(broker, out, 100)
    assert stats.processed == 100 and len(seen) == 100
    retried = [r for r in seen if r["o"] % 10 == 3]
    assert retried and all(r["a"] == 2 for r in retried)
    assert all(r["a"] == 1 for r in seen if r["o"] % 10 != 3)
    group = pc.settings.group_id
    assert committed(broker, group, topic, 2) == end_offsets(broker, topic, 2, 100)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_poison_record_stops_without_being_committed(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 1), broker.new_topic("bh-out", 1)
    produce_keyed(broker, topic, 30, keys=30)  # one key per record: others keep flowing
    pc = make(broker, executor, "poison_offset_3", topic, out, retry=FAST_RETRY)
    with pytest.raises(RecordFailed) as failed:
        pc.run(until_idle=5)
    assert (failed.value.offset, failed.value.attempts) == (3, 3)
    assert "ValueError: poison" in str(failed.value)
    assert committed(broker, pc.settings.group_id, topic, 1)[0] == 3


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_poison_record_goes_to_the_dead_letter_topic(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 1), broker.new_topic("bh-out", 1)
    dlq = broker.new_topic("bh-dlq", 1)
    produce_keyed(broker, topic, 30, keys=30)
    pc = make(
        broker, executor, "poison_offset_3", topic, out, retry=FAST_RETRY, dead_letter_topic=dlq
    )
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered) == (29, 1)
    [letter] = broker.consume_all(dlq, expected=1)
    headers = dict(letter.headers() or [])
    assert (letter.key(), letter.value()) == (b"k3", b"3")
    assert headers["parafka.dlq.offset"] == b"3" and headers["parafka.dlq.attempts"] == b"3"
    assert headers["parafka.dlq.exception"] == b"ValueError"
    assert committed(broker, pc.settings.group_id, topic, 1)[0] == 30


@pytest.mark.parametrize("executor", EXECUTORS)
def test_poison_records_in_a_batch_are_isolated(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 1), broker.new_topic("bh-out", 1)
    dlq = broker.new_topic("bh-dlq", 1)
    produce_keyed(broker, topic, 100, keys=100)
    pc = make(
        broker,
        executor,
        "batch_with_poison",
        topic,
        out,
        retry=FAST_RETRY,
        dead_letter_topic=dlq,
        batch_size=100,
        batch_wait=0.5,
    )
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered) == (98, 2)
    letters = broker.consume_all(dlq, expected=2)
    assert sorted(int(dict(m.headers() or [])["parafka.dlq.offset"]) for m in letters) == [17, 80]
    seen = [r["o"] for r in reports(broker, out, 98)]
    assert sorted(seen) == sorted(set(range(100)) - {17, 80})  # each once
    assert committed(broker, pc.settings.group_id, topic, 1)[0] == 100


@pytest.mark.parametrize("executor", EXECUTORS)
def test_stop_drains_running_work_and_commits_it(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 2), broker.new_topic("bh-out", 1)
    produce_keyed(broker, topic, 3000, keys=50)
    pc = make(broker, executor, "slow", topic, out, concurrency=8)
    pc.start()
    wait_until(lambda: pc.stats().processed >= 100, 60, "some progress")
    pc.stop()
    stats = pc.join(60)
    assert stats is not None and 100 <= stats.processed < 3000
    done = {(r["p"], r["o"]) for r in reports(broker, out, stats.processed)}
    for partition, offset in committed(broker, pc.settings.group_id, topic, 2).items():
        assert all((partition, o) in done for o in range(max(offset, 0)))  # no gap committed


@pytest.mark.parametrize("executor", EXECUTORS)
def test_batches_keep_order_and_cover_everything(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 4), broker.new_topic("bh-out", 4)
    produce_keyed(broker, topic, 800, keys=8)
    pc = make(broker, executor, "batch_it", topic, out, batch_size=50, batch_wait=0.02)
    stats = pc.run(until_idle=1.5)
    seen = reports(broker, out, 800)
    assert stats.processed == 800 and len(seen) == 800
    per_key: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for r in seen:
        per_key[(r["p"], r["k"])].append(r["o"])
    for offsets in per_key.values():
        assert offsets == sorted(offsets)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_second_consumer_takes_over_without_loss(broker: Broker, executor: str) -> None:
    topic, out = broker.new_topic("bh", 4), broker.new_topic("bh-out", 4)
    total = 1000
    produce_keyed(broker, topic, total, keys=40)
    first = make(broker, executor, "slow", topic, out, concurrency=4)
    group = first.settings.group_id
    first.start()
    wait_until(lambda: first.stats().processed >= 100, 60, "the first consumer to start")
    second = ParallelConsumer(
        handler(executor, "record_it"),
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        topics=[topic],
        output_topic=out,
        executor=executor,
        workers=2 if executor == "process" else None,
        kafka_config=group_config(),
    ).start()
    wait_until(lambda: second.stats().processed >= 50, 60, "the second consumer to share")
    first.stop()
    first_stats = first.join(60)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if committed(broker, group, topic, 4) == end_offsets(broker, topic, 4, total):
            break
        time.sleep(0.5)
    second.stop()
    second_stats = second.join(60)
    assert first_stats is not None and second_stats is not None
    wanted = {(p, o) for p, end in end_offsets(broker, topic, 4, total).items() for o in range(end)}
    expected = first_stats.processed + second_stats.processed
    seen = {(r["p"], r["o"]) for r in reports(broker, out, expected)}
    # The output topic may hold more than the records counted (a process worker's outputs
    # can be acknowledged after its consumer stopped counting, and records the first
    # consumer ran but did not commit run again): read the whole topic, duplicates and all,
    # before calling anything missing.
    if not wanted <= seen:
        found = broker.consume_all(out, expected=3 * total, timeout=20)
        seen = {(json.loads(m.value())["p"], json.loads(m.value())["o"]) for m in found}
    assert seen >= wanted, f"outputs missing for {sorted(wanted - seen)[:20]}"


def test_a_dead_worker_is_replaced_and_its_records_retried(broker: Broker) -> None:
    topic, out = broker.new_topic("bh", 1), broker.new_topic("bh-out", 1)
    produce_keyed(broker, topic, 200, keys=10)
    pc = make(broker, "process", "die_once", topic, out, retry=FAST_RETRY)
    stats = pc.run(until_idle=2)
    seen = reports(broker, out, stats.processed)
    assert {(r["p"], r["o"]) for r in seen} == {(0, o) for o in range(200)}
    assert [r["a"] for r in seen if r["o"] == 5] == [2]  # retried once, after the crash
    assert stats.failed >= 1
    assert committed(broker, pc.settings.group_id, topic, 1)[0] == 200
