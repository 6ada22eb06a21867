"""ParallelConsumer end to end against the local broker."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict

import pytest

from parafka import Output, Record, RecordFailed, RetryPolicy
from parafka.core.errors import BrokerUnreachable
from parafka.core.flow import MOST_BUFFERED
from parafka.testing import Broker, KafkaBroker, LocalBroker

from .helpers import committed, consumer, end_offsets, group, produce_keyed, wait_until

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, jitter=0)


@pytest.mark.parametrize("ordering", ["key", "partition", "unordered"])
def test_each_ordering_processes_everything_in_order(broker: LocalBroker, ordering: str) -> None:
    topic, gid = broker.new_topic("order", partitions=4), group()
    produce_keyed(broker, topic, 1200, keys=30)
    seen: dict[tuple[int, bytes | None], list[int]] = defaultdict(list)
    by_partition: dict[int, list[int]] = defaultdict(list)
    lock = threading.Lock()
    running, peak = [0], [0]

    def handle(record: Record) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.002 if int(record.value or b"0") % 7 else 0.01)
        with lock:
            running[0] -= 1
            seen[(record.partition, record.key)].append(record.offset)
            by_partition[record.partition].append(record.offset)

    stats = consumer(broker, handle, topic, gid, ordering=ordering, concurrency=16).run(
        until_idle=1.5
    )
    assert stats.processed == 1200
    assert sum(len(v) for v in seen.values()) == 1200
    if ordering == "key":
        for offsets in seen.values():
            assert offsets == sorted(offsets)
        assert peak[0] > 4  # keys of one partition ran side by side
    elif ordering == "partition":
        for offsets in by_partition.values():
            assert offsets == sorted(offsets)
        assert peak[0] <= 4
    else:
        assert peak[0] > 4
    assert committed(broker, gid, topic, 4) == end_offsets(broker, topic, 4, 1200)


def test_outputs_are_acknowledged_before_their_source_is_committed(broker: LocalBroker) -> None:
    source, sink, gid = broker.new_topic("src", 2), broker.new_topic("sink", 1), group()
    produce_keyed(broker, source, 400, keys=10)

    def handle(record: Record) -> list[Output]:
        n = int(record.text())
        return [Output({"n": n}, key=record.key), Output(f"copy-{n}", topic=sink)]

    stats = consumer(broker, handle, source, gid, output_topic=sink, concurrency=8).run(
        until_idle=1.5
    )
    assert stats.processed == 400
    outputs = broker.consume_all(sink, expected=800)
    values = [m.value() for m in outputs]
    assert sorted(values.count(f"copy-{n}".encode()) for n in range(400)) == [1] * 400
    assert {f'{{"n":{n}}}'.encode() for n in range(400)} <= set(values)
    assert committed(broker, gid, source, 2) == end_offsets(broker, source, 2, 400)


def test_a_failed_output_keeps_its_source_uncommitted(broker: LocalBroker) -> None:
    source, sink, gid = broker.new_topic("src", 1), broker.new_topic("sink", 1), group()
    produce_keyed(broker, source, 20, keys=20)

    def handle(record: Record) -> Output:
        # An output over the producer's message.max.bytes is refused by the client.
        size = 5000 if record.offset == 12 else 10
        return Output(b"x" * size)

    pc = consumer(
        broker,
        handle,
        source,
        gid,
        output_topic=sink,
        retry=FAST_RETRY,
        ordering="unordered",
        kafka_config={"message.max.bytes": 2000},
    )
    with pytest.raises(RecordFailed) as failed:
        pc.run(until_idle=5)
    assert (failed.value.partition, failed.value.offset) == (0, 12)
    assert committed(broker, gid, source, 1)[0] == 12


def test_failing_record_holds_only_its_key_then_stops_uncommitted(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("fail", partitions=1), group()
    produce_keyed(broker, topic, 60, keys=6)  # offset 3 has key k3
    attempts: list[int] = []
    done: list[int] = []

    def handle(record: Record) -> None:
        if record.offset == 3:
            attempts.append(record.attempt)
            raise ValueError("boom")
        done.append(record.offset)

    pc = consumer(broker, handle, topic, gid, ordering="key", concurrency=4, retry=FAST_RETRY)
    with pytest.raises(RecordFailed) as failed:
        pc.run(until_idle=5)
    err = failed.value
    assert (err.topic, err.partition, err.offset, err.attempts) == (topic, 0, 3, 3)
    assert "ValueError: boom" in str(err) and f"{topic}[0]@3" in str(err)
    assert attempts == [1, 2, 3]
    other_keys = [o for o in range(60) if o % 6 != 3]
    assert set(other_keys) <= set(done)  # other keys kept flowing while k3 waited
    assert not {o for o in done if o % 6 == 3}  # nothing after the failure ran on key k3
    assert committed(broker, gid, topic, 1)[0] == 3


def test_a_retried_record_sees_its_attempt_number(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("retry", partitions=1), group()
    produce_keyed(broker, topic, 10, keys=2)
    seen: list[tuple[int, int]] = []

    def handle(record: Record) -> None:
        seen.append((record.offset, record.attempt))
        if record.offset == 4 and record.attempt < 3:
            raise RuntimeError("transient")

    stats = consumer(broker, handle, topic, gid, retry=FAST_RETRY).run(until_idle=1.5)
    assert stats.processed == 10 and stats.retried == 2
    assert [a for o, a in seen if o == 4] == [1, 2, 3]
    assert committed(broker, gid, topic, 1)[0] == 10


def test_slow_handler_past_max_poll_interval_causes_no_rebalance(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("slow", partitions=2), group()
    produce_keyed(broker, topic, 20, keys=20)
    calls: dict[int, int] = defaultdict(int)

    def handle(record: Record) -> None:
        calls[record.partition * 1000 + record.offset] += 1
        if record.partition == 0 and record.offset == 0:
            time.sleep(8.5)  # longer than max.poll.interval.ms below

    pc = consumer(
        broker,
        handle,
        topic,
        gid,
        concurrency=4,
        kafka_config={"max.poll.interval.ms": 7000},
    )
    stats = pc.run(until_idle=1.5)
    assert stats.rebalances == 1  # the first assignment only
    assert len(calls) == 20 and set(calls.values()) == {1}
    assert committed(broker, gid, topic, 2) == end_offsets(broker, topic, 2, 20)


@pytest.mark.any_broker
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_two_consumers_share_partitions_and_lose_nothing(broker: Broker, strategy: str) -> None:
    """Eager (range) and cooperative rebalances: a second member joins, the first leaves."""
    share_and_lose_nothing(broker, {"partition.assignment.strategy": strategy})


def test_the_consumer_protocol_shares_partitions_and_loses_nothing(
    kafka_broker: KafkaBroker,
) -> None:
    """KIP-848 (`group.protocol=consumer`): the broker assigns, incrementally."""
    share_and_lose_nothing(kafka_broker, {"group.protocol": "consumer"})


def share_and_lose_nothing(broker: Broker, cfg: dict[str, str]) -> None:
    topic, gid = broker.new_topic("reb", partitions=4), group()
    total = 2000  # about 10 s of work for one consumer: both get to own partitions
    produce_keyed(broker, topic, total, keys=40)
    log: dict[str, list[tuple[int, bytes | None, int]]] = {"a": [], "b": []}

    def handler(name: str):  # type: ignore[no-untyped-def]
        def handle(record: Record) -> None:
            time.sleep(0.01)
            log[name].append((record.partition, record.key, record.offset))

        return handle

    def processed() -> set[tuple[int, int]]:
        return {(p, o) for entries in list(log.values()) for p, _k, o in list(entries)}

    a = consumer(broker, handler("a"), topic, gid, concurrency=2, kafka_config=cfg).start()
    wait_until(lambda: len(log["a"]) >= 100, 30, "consumer a to get going")
    b = consumer(broker, handler("b"), topic, gid, concurrency=2, kafka_config=cfg).start()
    wait_until(lambda: len(log["b"]) >= 50, 30, "consumer b to join and process")
    a.stop()
    a_stats = a.join(30)
    wait_until(lambda: len(processed()) >= total, 60, "every record to be processed")
    b.stop()
    b_stats = b.join(30)
    assert a_stats is not None and b_stats is not None
    assert len(processed()) == total  # nothing lost
    # Order per key within each consumer: a key's offsets only go backwards when the
    # partition was handed over (redelivery from the committed offset after a rebalance).
    for name, stats in (("a", a_stats), ("b", b_stats)):
        per_key: dict[tuple[int, bytes | None], list[int]] = defaultdict(list)
        for p, k, o in log[name]:
            per_key[(p, k)].append(o)
        for offsets in per_key.values():
            backwards = sum(1 for x, y in itertools.pairwise(offsets) if y < x)
            assert backwards <= stats.rebalances
    assert committed(broker, gid, topic, 4) == end_offsets(broker, topic, 4, total)


def test_backpressure_bounds_records_in_memory(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("bp", partitions=2), group()
    produce_keyed(broker, topic, 3000, keys=50)
    gate = threading.Event()

    def handle(record: Record) -> None:
        gate.wait(10)

    pc = consumer(broker, handle, topic, gid, ordering="unordered", concurrency=4, max_buffered=100)
    peak, saw_paused = 0, False
    with pc:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not saw_paused:
            stats = pc.stats()
            peak = max(peak, stats.held)
            saw_paused = saw_paused or stats.paused
            time.sleep(0.02)
        gate.set()
        wait_until(lambda: pc.stats().processed == 3000, 60, "the backlog to drain")
        final = pc.stats()
    assert saw_paused  # stuck full for over a second: partitions were paused
    assert peak <= 100
    assert not final.paused


def test_without_max_buffered_the_limit_grows_with_the_rate_and_holds(
    broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 s of records instead of 50 ms: any machine's rate grows the limit (flow.py), so
    # this checks the loop on a real client: it grows, and held records stay under it.
    monkeypatch.setattr("parafka.core.flow.BUFFER_SECONDS", 10.0)
    topic, gid = broker.new_topic("grow", partitions=2), group()
    produce_keyed(broker, topic, 20_000, keys=100)
    pc = consumer(broker, lambda record: None, topic, gid, ordering="key")
    peak_over = 0  # records held beyond the limit in use, at most
    with pc:
        deadline = time.monotonic() + 60
        while pc.stats().processed < 20_000 and time.monotonic() < deadline:
            stats = pc.stats()
            peak_over = max(peak_over, stats.held - stats.buffer_limit)
            time.sleep(0.01)
        final = pc.stats()
    assert final.processed == 20_000
    assert 1000 < final.buffer_limit <= MOST_BUFFERED  # grew from the default for C=16
    assert peak_over <= 0
    assert committed(broker, gid, topic, 2) == end_offsets(broker, topic, 2, 20_000)


def test_without_max_buffered_records_waiting_to_start_stay_within_the_backlog(
    broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit grows to its ceiling at the first look at the rate (10 s of records), while
    # the backlog stays at the starting limit (0 s of records): records waiting to start
    # must stay within it, though the buffer may hold ten times as many (flow.py).
    monkeypatch.setattr("parafka.core.flow.BUFFER_SECONDS", 10.0)
    monkeypatch.setattr("parafka.core.flow.BACKLOG_SECONDS", 0.0)
    topic, gid = broker.new_topic("backlog", partitions=2), group()
    produce_keyed(broker, topic, 60_000, keys=100)

    def busy(record: Record) -> None:  # about 10 us each: a run of a second or more
        end = time.perf_counter() + 1e-5
        while time.perf_counter() < end:
            pass

    pc = consumer(broker, busy, topic, gid, ordering="key")  # C=16: the backlog is 1,000
    peak_waiting, limits = 0, set()
    with pc:
        deadline = time.monotonic() + 60
        while pc.stats().processed < 60_000 and time.monotonic() < deadline:
            stats = pc.stats()
            peak_waiting = max(peak_waiting, stats.queued)
            limits.add(stats.buffer_limit)
            time.sleep(0.01)
        final = pc.stats()
    assert final.processed == 60_000
    assert MOST_BUFFERED in limits  # the buffer could have held 10,000 meanwhile
    assert 0 < peak_waiting <= 1000
    assert committed(broker, gid, topic, 2) == end_offsets(broker, topic, 2, 60_000)


def test_stop_from_another_thread_commits_what_is_done(broker: LocalBroker) -> None:
    topic, gid = broker.new_topic("stop", partitions=2), group()
    produce_keyed(broker, topic, 2000, keys=50)
    done: list[tuple[int, int]] = []

    def handle(record: Record) -> None:
        time.sleep(0.002)
        done.append((record.partition, record.offset))

    pc = consumer(broker, handle, topic, gid, concurrency=4)
    pc.start()
    wait_until(lambda: len(done) >= 300, 30, "some progress")
    pc.stop()
    stats = pc.join(30)
    assert stats is not None and not pc.is_running
    finished = set(done)
    for partition, offset in committed(broker, gid, topic, 2).items():
        # every record below the committed offset was processed
        assert all((partition, o) in finished for o in range(offset))
    assert stats.processed == len(done) < 2000


def test_unreachable_broker_fails_fast() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from parafka import ParallelConsumer

    pc = ParallelConsumer(
        lambda r: None,
        bootstrap_servers=f"127.0.0.1:{port}",
        group_id="g",
        topics=["t"],
        connect_timeout=2,
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match=f"127.0.0.1:{port}"):
        pc.run()
    assert time.monotonic() - started < 10


def _broker_keeps_commit_metadata(broker: Broker) -> bool:
    from confluent_kafka import Consumer, TopicPartition

    topic, gid = broker.new_topic("probe", 1), group()
    probe = Consumer(broker.client_config(**{"group.id": gid}))
    try:
        probe.commit(offsets=[TopicPartition(topic, 0, 0, metadata="probe")], asynchronous=False)
        (back,) = probe.committed([TopicPartition(topic, 0)], timeout=10)
        return back.metadata == "probe"
    finally:
        probe.close()


@pytest.mark.any_broker
def test_records_finished_above_the_commit_are_skipped_by_the_next_owner(
    broker: Broker,
) -> None:
    """In process, a clean stop: the local broker skips it (it drops metadata)."""
    if not _broker_keeps_commit_metadata(broker):
        pytest.skip("this broker accepts commit metadata but returns it empty on fetch")
    topic, gid = broker.new_topic("meta", 1), group()
    produce_keyed(broker, topic, 20, keys=20)
    gate, first_run = threading.Event(), []

    def slow_first(record: Record) -> None:
        if record.offset == 0:
            gate.wait(20)
        first_run.append(record.offset)

    a = consumer(broker, slow_first, topic, gid, ordering="unordered", shutdown_timeout=1)
    a.start()
    wait_until(lambda: len(first_run) >= 19, 30, "records 1..19 to finish")
    a.stop(drain=False)  # offset 0 never finishes: commit 0 with 1..19 in the metadata
    a.join(30)
    gate.set()
    second_run: list[int] = []
    stats = consumer(broker, lambda r: second_run.append(r.offset), topic, gid).run(until_idle=1.5)
    assert second_run == [0]
    assert stats.skipped_already_done == 19


def test_a_starved_partition_gets_its_share_of_the_buffer(broker: LocalBroker) -> None:
    """Partition mode runs one record per partition; when the client hands out a few
    partitions first and they fill the buffer, the others must still get records early
    (fair-share pauses), not only once the first ones have drained."""
    topic, gid = broker.new_topic("fair", partitions=4), group()
    # Half a partition takes about 1.2 s: room for the broker's first fetch of a partition
    # to come late on a loaded machine (with 150 records, 0.6 s, a CI run once saw one
    # partition start after another had done half of its records).
    per_partition = 300
    for p in range(4):
        broker.produce(topic, [(b"k", b"%d" % i) for i in range(per_partition)], partition=p)
    order: list[int] = []

    def handle(record: Record) -> None:
        time.sleep(0.008)  # slow enough that the fair share acts well within half a partition
        order.append(record.partition)

    stats = consumer(
        broker, handle, topic, gid, ordering="partition", concurrency=4, max_buffered=200
    ).run(until_idle=1.5)
    assert stats.processed == 4 * per_partition
    first_seen = {p: order.index(p) for p in range(4)}
    done_at_half = {
        p: [i for i, q in enumerate(order) if q == p][per_partition // 2] for p in range(4)
    }
    # every partition started before any partition got through half of its records
    assert max(first_seen.values()) < min(done_at_half.values())


@pytest.mark.parametrize("placement", ["together", "os"])
def test_the_control_and_output_threads_share_one_core_unless_told_otherwise(
    broker: LocalBroker, placement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # engine/placement.py: the two threads that take turns with the GIL run on one core
    # (measured faster) while the machine has a core to spare; with thread_placement="os"
    # the system places them.
    import os

    from parafka.engine import placement as placing

    if not placing.supported():
        pytest.skip("needs Linux and two cores or more")
    ticks = [0]

    def idle(_cores: set[int]) -> tuple[int, int]:  # the suite's other workers keep the
        ticks[0] += 100  # cores busy: the machine is said to be idle
        return ticks[0], ticks[0]

    monkeypatch.setattr(placing, "_idle_and_total", idle)
    source, sink = broker.new_topic("placed-in", 2), broker.new_topic("placed-out", 2)
    gid = group()
    produce_keyed(broker, source, 300, keys=20)
    allowed = os.sched_getaffinity(0)
    seen: list[tuple[set[int], set[int]]] = []

    def handle(record: Record) -> Output:
        time.sleep(0.02)  # a run of 3 s: the placement looks every second
        return Output(record.value, key=record.key)

    pc = consumer(
        broker, handle, source, gid, output_topic=sink, concurrency=2, thread_placement=placement
    )
    with pc:
        deadline = time.monotonic() + 30
        while pc.stats().processed < 300 and time.monotonic() < deadline:
            # (a thread just started is listed before it runs, with no native id yet)
            threads = {t.name: t.native_id for t in threading.enumerate() if t.native_id}
            if "parafka-control" in threads and "parafka-outputs" in threads:
                seen.append(
                    (
                        os.sched_getaffinity(threads["parafka-control"]),
                        os.sched_getaffinity(threads["parafka-outputs"]),
                    )
                )
            time.sleep(0.05)
        assert pc.stats().processed == 300
    pinned = [control for control, outputs in seen if len(control) == 1 and control == outputs]
    if placement == "together":
        assert pinned, f"never pinned together in {len(seen)} looks"
    else:
        assert not pinned and all(c == o == allowed for c, o in seen)
    assert committed(broker, gid, source, 2) == end_offsets(broker, source, 2, 300)
