"""The review's defects end to end on the local broker (issue 11). Each names the defect;
the ledger's unit tests (tests/unit/test_ledger.py) and the simulator cover them too.
Defects 2, 3 and 5 need interleavings or commit metadata the local broker cannot give on
demand: the simulator and the unit tests check them."""

from __future__ import annotations

import threading

from parafka import Record, RetryPolicy
from parafka.testing import LocalBroker
from tests.integration.helpers import committed, consumer, end_offsets, wait_until


def test_defect_1_a_retry_due_before_an_acknowledgement_does_not_stall(
    broker: LocalBroker,
) -> None:
    """One partition in `partition` order, outputs held by the producer (linger.ms=1000),
    offset 2500 failing once with no backoff: its retry comes due while older records of
    its run still await their acknowledgement. Everything must still be committed."""
    topic, out = broker.new_topic("d1", 1), broker.new_topic("d1-out", 1)
    broker.produce(topic, [(b"k", str(i).encode()) for i in range(3000)])

    def handle(record: Record) -> bytes:
        if record.offset == 2500 and record.attempt == 1:
            raise RuntimeError("fails once")
        return record.value or b""

    pc = consumer(
        broker,
        handle,
        topic,
        "d1",
        ordering="partition",
        output_topic=out,
        retry=RetryPolicy(initial_backoff=0.0, jitter=0.0),
        kafka_config={"linger.ms": 1000},
    )
    stats = pc.run(until_idle=2.0)
    assert stats.retried == 1
    assert committed(broker, "d1", topic, 1) == {0: 3000}


def test_defect_4_exactly_once_held_outputs_count_against_the_buffer(broker: LocalBroker) -> None:
    """Exactly-once, the partition's first record hangs: later records finish and their
    outputs wait for it. They count as held: fetching pauses at max_buffered instead of
    taking the whole backlog in."""
    topic, out = broker.new_topic("d4", 1), broker.new_topic("d4-out", 1)
    broker.produce(topic, [(b"k%d" % (i % 50), b"x") for i in range(5000)])
    release = threading.Event()

    def handle(record: Record) -> bytes:
        if record.offset == 0:
            release.wait(60)
        return b"out"

    pc = consumer(
        broker,
        handle,
        topic,
        "d4",
        ordering="unordered",
        output_topic=out,
        exactly_once=True,
        max_buffered=300,
        concurrency=4,
    ).start()
    try:
        wait_until(lambda: pc.stats().processed >= 200, 60, "records finished behind the hung one")
        wait_until(lambda: pc.stats().paused, 30, "fetching paused at the bound")
        assert pc.stats().processed < 300  # never more held than max_buffered
    finally:
        release.set()
        pc.stop()
        pc.join(60)
    assert committed(broker, "d4", topic, 1)[0] > 0


def test_defect_6_a_worker_death_charges_only_the_record_it_ran(broker: LocalBroker) -> None:
    """Process executor, big chunks: offset 7 kills its worker on every attempt. Only that
    record goes to the dead-letter topic; its chunk-mates run again and succeed."""
    topic, out = broker.new_topic("d6", 1), broker.new_topic("d6-out", 1)
    dlq = broker.new_topic("d6-dlq", 1)
    broker.produce(topic, [(b"k%d" % (i % 4), b"x") for i in range(200)])
    pc = consumer(
        broker,
        "tests.handlers.kill_worker:handle",
        topic,
        "d6",
        executor="process",
        workers=1,
        ordering="unordered",
        output_topic=out,
        dead_letter_topic=dlq,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, jitter=0.0),
    )
    stats = pc.run(until_idle=2.0)
    assert stats.dead_lettered == 1
    letters = broker.consume_all(dlq, expected=1)
    assert [dict(m.headers() or [])["parafka.dlq.offset"] for m in letters] == [b"7"]
    assert committed(broker, "d6", topic, 1) == end_offsets(broker, topic, 1, 200)
