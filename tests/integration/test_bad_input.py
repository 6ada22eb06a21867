"""Bad input, each with a defined outcome and nothing lost: processed, dead-lettered, or a
one-line error with an exit code (issue 6, point 4).

Malformed JSON with the json deserializer is in test_deadletter.py
(test_undecodable_values_go_to_the_dead_letter_topic_at_once); malformed group ids and topic
names, which never reach a broker, in tests/unit/kafka/test_bad_settings.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from parafka import Output, Record, RecordFailed, RetryPolicy
from parafka.core import deadletter as dl
from parafka.testing import LocalBroker

from .helpers import committed, consumer, wait_until
from .test_cli import RECORD_OFFSETS, cli_env, error_lines, run_args, run_cli
from .test_deadletter import letters

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.05, jitter=0)
MIB = 1 << 20


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def test_null_keys_and_values(broker: LocalBroker) -> None:
    """Null keys and values reach the handler as None, go out as null in outputs and dead
    letters, and decode to None with the json deserializer. In key order the null key is
    one key: its records run in offset order."""
    topic, out, dlq = broker.new_topic("null"), broker.new_topic("null-out"), broker.new_topic()
    records = [(None, None), (None, b'{"n": 1}'), (b"k", None), (b"k", b'{"n": 2}'),
               (None, b'{"n": 3}'), (None, None)]  # fmt: skip
    broker.produce(topic, records)
    seen: list[tuple[int, bytes | None, object]] = []

    def handle(record: Record) -> Output:
        if record.offset == 0:
            raise ValueError("the first one fails")
        seen.append((record.offset, record.key, record.data))
        return Output(record.value, key=record.key)

    pc = consumer(broker, handle, topic, _group(), retry=QUICK, output_topic=out,
                  dead_letter_topic=dlq, deserializer="json")  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered) == (5, 1)
    null_key = [offset for offset, key, _ in seen if key is None]
    assert null_key == [1, 4, 5]  # one shard, in order
    assert sorted(seen) == [(1, None, {"n": 1}), (2, b"k", None), (3, b"k", {"n": 2}),
                            (4, None, {"n": 3}), (5, None, None)]  # fmt: skip
    outputs = broker.consume_all(out, expected=5)
    assert sorted(((m.key(), m.value()) for m in outputs), key=repr) == sorted(
        records[1:], key=repr
    )
    [letter] = letters(broker, dlq, 1)
    assert (letter["key"], letter["value"]) == (None, None)
    assert committed(broker, pc.settings.group_id, topic, 1) == {0: 6}


def _produce_large(broker: LocalBroker, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """LocalBroker.produce keeps the client's default message.max.bytes (1,000,000)."""
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap_servers, "message.max.bytes": 2 * MIB}
    )
    failures: list[object] = []
    for key, value in records:
        producer.produce(topic, value, key, on_delivery=lambda e, _m: e and failures.append(e))
    assert producer.flush(30) == 0 and not failures, failures


def test_a_1mib_value(broker: LocalBroker) -> None:
    """A 1 MiB value is consumed whole with the default settings. An output of that size is
    over the producer's default message.max.bytes (1,000,000): it fails, is retried, and its
    dead letter (the same value) is refused too, so the consumer stops without committing
    it, naming the setting to raise. Records whose outputs went out at the same moment are
    not affected (before, the refusal failed every output sent with it, and small records
    could reach the dead-letter topic). With -X message.max.bytes raised it goes through."""
    topic = broker.new_topic("big")
    big = bytes(range(256)) * (MIB // 256)
    small = [(b"small%d" % i, b"s%d" % i) for i in range(8)]
    _produce_large(broker, topic, [(b"big", big), *small])

    sizes: list[int] = []
    stats = consumer(broker, lambda r: sizes.append(len(r.value or b"")), topic, _group()).run(
        until_idle=1.5
    )
    assert stats.processed == 9 and max(sizes) == MIB

    out, dlq = broker.new_topic("big-out"), broker.new_topic("big-dlq")
    together = threading.Barrier(9)  # first attempts finish at once: one epoch of outputs

    def echo(record: Record) -> Output:
        if record.attempt == 1:
            together.wait(10)
        return Output(record.value, key=record.key)

    refused = consumer(broker, echo, topic, _group(), retry=QUICK, output_topic=out,
                       dead_letter_topic=dlq)  # fmt: skip
    with pytest.raises(RecordFailed) as failed:
        refused.run(until_idle=5)
    assert failed.value.offset == 0
    assert "MSG_SIZE_TOO_LARGE" in str(failed.value)
    assert "-X message.max.bytes" in str(failed.value)
    assert committed(broker, refused.settings.group_id, topic, 1) == {0: 0}  # not past it
    assert sorted(m.value() for m in broker.consume_all(out, expected=8)) == [v for _, v in small]
    assert broker.consume_all(dlq, expected=1, timeout=2) == []

    again = broker.new_topic("big-out")
    raised = consumer(broker, echo, topic, _group(), output_topic=again,
                      kafka_config={"message.max.bytes": 2 * MIB})  # fmt: skip
    assert raised.run(until_idle=1.5).processed == 9
    sent = {m.key(): m.value() for m in broker.consume_all(again, expected=9)}
    assert sent[b"big"] == big and len(sent) == 9
    assert committed(broker, raised.settings.group_id, topic, 1) == {0: 9}


def test_non_utf8_bytes(broker: LocalBroker) -> None:
    """Bytes (the default) are handed over as they are; `text` dead-letters what does not
    decode, at once, with the reason."""
    topic, dlq = broker.new_topic("bin"), broker.new_topic("bin-dlq")
    broker.produce(topic, [(b"a", b"\xff\xfe\x00bin"), (b"b", "héllo".encode())])

    raw: list[bytes | None] = []
    assert (
        consumer(broker, lambda r: raw.append(r.data), topic, _group())
        .run(until_idle=1.5)
        .processed
        == 2
    )
    assert sorted(raw, key=repr) == sorted([b"\xff\xfe\x00bin", "héllo".encode()], key=repr)

    text: list[str] = []
    pc = consumer(broker, lambda r: text.append(r.data), topic, _group(), retry=QUICK,
                  dead_letter_topic=dlq, deserializer="text")  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered, stats.retried) == (1, 1, 0)
    assert text == ["héllo"]
    [letter] = letters(broker, dlq, 1)
    assert letter["value"] == b"\xff\xfe\x00bin"
    assert letter["parafka.dlq.stage"] == b"deserializer"
    assert b"UnicodeDecodeError" in (letter["parafka.dlq.message"] or b"")
    assert committed(broker, pc.settings.group_id, topic, 1) == {0: 2}


def test_a_record_with_200_headers(broker: LocalBroker) -> None:
    """Every header reaches the handler, in order, repeated names and null values included,
    and a dead letter keeps them all before its own parafka.dlq.* headers."""
    topic, dlq = broker.new_topic("hdr"), broker.new_topic("hdr-dlq")
    headers: list[tuple[str, bytes | None]] = [(f"h{i:03d}", b"v%d" % i) for i in range(198)]
    headers += [("h000", b"again"), ("empty", None)]
    broker.produce(topic, [(b"k0", b"fine"), (b"k1", b"fails")], headers=list(headers))
    seen: dict[int, list[tuple[str, bytes | None]]] = {}

    def handle(record: Record) -> None:
        seen[record.offset] = list(record.headers or [])
        if record.offset == 1:
            raise ValueError("dead-letter me")

    pc = consumer(broker, handle, topic, _group(), retry=QUICK, dead_letter_topic=dlq)
    stats = pc.run(until_idle=1.5)
    assert (stats.processed, stats.dead_lettered) == (1, 1)
    assert seen[0] == seen[1] == headers
    [message] = broker.consume_all(dlq, expected=1)
    kept = list(message.headers() or [])
    assert kept[:200] == headers
    assert [name for name, _ in kept[200:]] == [
        dl.TOPIC, dl.PARTITION, dl.OFFSET, dl.GROUP, dl.ATTEMPTS, dl.STAGE, dl.EXCEPTION,
        dl.MESSAGE, dl.FIRST_FAILURE, dl.LAST_FAILURE,
    ]  # fmt: skip
    assert committed(broker, pc.settings.group_id, topic, 1) == {0: 2}


def test_an_empty_topic_exits_0_with_nothing_processed(broker: LocalBroker, tmp_path: Path) -> None:
    topic = broker.new_topic("empty", partitions=2)
    out = tmp_path / "out.txt"
    args = run_args(broker, RECORD_OFFSETS, topic, _group(), "--until-idle", "1.5")
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(out)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "processed 0 records" in result.stderr
    assert not error_lines(result.stderr) and not out.exists()


def test_a_missing_topic_ends_an_until_idle_run_with_exit_1(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """Before, the run waited for the topic forever, --until-idle or not."""
    missing = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    args = run_args(broker, RECORD_OFFSETS, missing, _group(), "--until-idle", "1.5")
    started = time.monotonic()
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(tmp_path / "out.txt")), timeout=60)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    [line] = error_lines(result.stderr)
    assert f"topic(s) {missing} do not exist" in line and "-t" in line
    assert "Traceback" not in result.stderr


def test_without_until_idle_a_missing_topic_is_waited_for(broker: LocalBroker) -> None:
    """The topic is noticed at the client's next metadata refresh (5 min by default)."""
    name = f"late-{uuid.uuid4().hex[:8]}"
    got = threading.Event()
    pc = consumer(broker, lambda r: got.set(), name, _group(),
                  kafka_config={"topic.metadata.refresh.interval.ms": 500})  # fmt: skip
    pc.start()
    try:
        broker.create_topic(name)
        broker.produce(name, [(None, b"first")])
        wait_until(got.is_set, 30, "the record of the topic created after the start")
        assert pc.is_running
    finally:
        pc.stop()
        pc.join(30)
