"""Failures for good: the dead-letter topic and its headers, non-retryable errors,
undecodable values, the skip policy, and the CLI options for them."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from parafka import Record, RecordFailed, RetryPolicy
from parafka.testing import Broker

from .helpers import committed, consumer, end_offsets, wait_until
from .test_cli import FAIL_AT_SEVEN, cli_env, error_lines, produced, run_args, run_cli

pytestmark = pytest.mark.any_broker

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.2, jitter=0)


def letters(broker: Broker, topic: str, count: int) -> list[dict[str, bytes | None]]:
    found = broker.consume_all(topic, expected=count)
    assert len(found) == count
    return [
        {"key": m.key(), "value": m.value(), **dict(m.headers() or [])}  # type: ignore[dict-item]
        for m in found
    ]


def test_dead_letter_headers_are_exact(broker: Broker) -> None:
    topic, dlq = broker.new_topic("dl", 1), broker.new_topic("dl-dlq", 1)
    broker.produce(topic, [(b"k%d" % i, b"v%d" % i) for i in range(10)], headers=[("trace", b"t1")])

    def handle(record: Record) -> None:
        if record.offset == 7:
            raise ValueError("bad value 7")

    pc = consumer(broker, handle, topic, "g-" + uuid.uuid4().hex[:8], retry=QUICK,
                  dead_letter_topic=dlq)  # fmt: skip
    before = time.time()
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered, stats.failed) == (9, 1, 2)
    [letter] = letters(broker, dlq, 1)
    first = datetime.fromisoformat(str(letter.pop("parafka.dlq.first-failure"), "ascii"))
    last = datetime.fromisoformat(str(letter.pop("parafka.dlq.last-failure"), "ascii"))
    assert before - 1 <= first.timestamp() and first.timestamp() + 0.15 <= last.timestamp()
    assert last.timestamp() <= time.time()
    assert letter == {
        "key": b"k7",
        "value": b"v7",
        "trace": b"t1",
        "parafka.dlq.topic": topic.encode(),
        "parafka.dlq.partition": b"0",
        "parafka.dlq.offset": b"7",
        "parafka.dlq.group": pc.settings.group_id.encode(),
        "parafka.dlq.attempts": b"2",
        "parafka.dlq.stage": b"handler",
        "parafka.dlq.exception": b"ValueError",
        "parafka.dlq.message": b"bad value 7",
    }
    assert committed(broker, pc.settings.group_id, topic, 1) == {0: 10}


def test_a_poison_record_blocks_only_its_key(broker: Broker) -> None:
    topic, dlq = broker.new_topic("dl", 2), broker.new_topic("dl-dlq", 1)
    broker.produce(topic, [(b"k%d" % (i % 1000), b"%d" % i) for i in range(2000)])
    seen: list[bytes] = []
    lock = threading.Lock()

    def handle(record: Record) -> None:
        if record.value == b"0":  # the first record of key k0
            raise RuntimeError("poison")
        with lock:
            seen.append(record.value or b"")

    slow_retry = RetryPolicy(max_attempts=2, initial_backoff=5.0, jitter=0)
    pc = consumer(broker, handle, topic, "g-" + uuid.uuid4().hex[:8], retry=slow_retry,
                  dead_letter_topic=dlq, ordering="key", concurrency=16)  # fmt: skip
    pc.start()
    try:
        # The 999 other keys finish while k0 waits for its retry...
        wait_until(lambda: len(seen) >= 1998, 30, "the other keys to finish")
        assert pc.stats().dead_lettered == 0
        assert b"1000" not in seen  # ...and k0's next record waits behind the poison one
        wait_until(lambda: len(seen) == 1999, 30, "k0's next record after the dead letter")
        wait_until(lambda: pc.stats().dead_lettered == 1, 5, "the dead letter in the stats")
    finally:
        pc.stop()
        pc.join(30)
    assert seen[-1] == b"1000"


def test_undecodable_values_go_to_the_dead_letter_topic_at_once(broker: Broker) -> None:
    topic, dlq = broker.new_topic("dl", 1), broker.new_topic("dl-dlq", 1)
    broker.produce(topic, [(None, b'{"n": 1}'), (None, b"{oops"), (None, b'{"n": 3}')])
    data: list[object] = []
    pc = consumer(broker, lambda r: data.append(r.data), topic, "g-" + uuid.uuid4().hex[:8],
                  retry=QUICK, dead_letter_topic=dlq, deserializer="json")  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert data == [{"n": 1}, {"n": 3}]
    assert (stats.dead_lettered, stats.retried) == (1, 0)
    [letter] = letters(broker, dlq, 1)
    assert letter["value"] == b"{oops" and letter["parafka.dlq.attempts"] == b"1"
    assert letter["parafka.dlq.stage"] == b"deserializer"
    assert letter["parafka.dlq.exception"] == b"parafka.deserializers.DeserializationError"
    assert b"JSONDecodeError" in (letter["parafka.dlq.message"] or b"")


def test_an_undecodable_value_without_dead_letter_topic_stops(broker: Broker) -> None:
    topic = broker.new_topic("dl", 1)
    broker.produce(topic, [(None, b"\xff\xfe"), (None, b"fine")])
    pc = consumer(broker, lambda r: None, topic, "g-" + uuid.uuid4().hex[:8],
                  deserializer="text")  # fmt: skip
    with pytest.raises(RecordFailed) as failed:
        pc.run(until_idle=5)
    assert (failed.value.offset, failed.value.attempts) == (0, 1)
    assert "UnicodeDecodeError" in str(failed.value)


def test_no_retry_errors_give_up_on_the_first_attempt(broker: Broker) -> None:
    topic, dlq = broker.new_topic("dl", 1), broker.new_topic("dl-dlq", 1)
    broker.produce(topic, [(None, b"1"), (None, b"2")])

    def handle(record: Record) -> None:
        if record.value == b"2":
            raise KeyError("missing field")

    policy = RetryPolicy(max_attempts=5, initial_backoff=0.05, no_retry=(KeyError,))
    pc = consumer(broker, handle, topic, "g-" + uuid.uuid4().hex[:8], retry=policy,
                  dead_letter_topic=dlq)  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert (stats.failed, stats.retried, stats.dead_lettered) == (1, 0, 1)
    assert letters(broker, dlq, 1)[0]["parafka.dlq.exception"] == b"KeyError"


def test_skip_is_an_explicit_choice_and_is_counted(broker: Broker) -> None:
    topic = broker.new_topic("dl", 1)
    broker.produce(topic, [(None, b"%d" % i) for i in range(5)])

    def handle(record: Record) -> None:
        if record.offset == 2:
            raise ValueError("bad")

    pc = consumer(broker, handle, topic, "g-" + uuid.uuid4().hex[:8], retry=QUICK,
                  on_failure="skip")  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.skipped_after_failure) == (4, 1)
    assert committed(broker, pc.settings.group_id, topic, 1) == {0: 5}


def test_cli_dead_letter_topic_and_errors(broker: Broker, tmp_path: Path) -> None:
    topic, group = broker.new_topic("cli-dl", partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    dlq = broker.new_topic("cli-dl-dlq", 1)
    produced(broker, topic, 20, keys=5)
    args = run_args(broker, FAIL_AT_SEVEN, topic, group, "--max-attempts", "2",
                    "--retry-backoff", "0.05", "--until-idle", "5",
                    "--dead-letter-topic", dlq)  # fmt: skip
    result = run_cli(args, cli_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 dead-lettered" in result.stderr
    assert letters(broker, dlq, 1)[0]["parafka.dlq.offset"] == b"7"
    assert committed(broker, group, topic, 1) == end_offsets(broker, topic, 1, 20)

    bad = run_cli([*args, "--no-retry", "NoSuchError"], cli_env(), timeout=30)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(error_lines(bad.stderr)) == 1 and "'NoSuchError'" in bad.stderr
    wrong = run_cli([*args, "--on-failure", "skip"], cli_env(), timeout=30)
    assert wrong.returncode == 2 and "drop one of them" in wrong.stderr
