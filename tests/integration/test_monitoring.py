"""/metrics, /healthz and `parafka lag` against the local broker."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from parafka import ParallelConsumer, Record, RetryPolicy
from parafka.core.codec import encode_completed
from parafka.testing import Broker
from parafka.testing.broker import free_port

from .helpers import committed, consumer, wait_until
from .test_cli import RECORD_OFFSETS, cli_env, line_count, run_args, run_cli, started_cli, wait_exit

pytestmark = pytest.mark.any_broker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metrics(pc: ParallelConsumer) -> Samples:
    status, text = _get(f"http://127.0.0.1:{pc.metrics_port}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _health(pc: ParallelConsumer) -> tuple[int, dict[str, Any]]:
    status, body = _get(f"http://127.0.0.1:{pc.metrics_port}/healthz")
    return status, json.loads(body)


def _lag(samples: Samples, topic: str, partition: int, part: str) -> float:
    labels = (("part", part), ("partition", str(partition)), ("topic", topic))
    return samples[("parafka_lag_records", labels)]


def _produce_each(broker: Broker, topic: str, partition: int, count: int) -> None:
    """One record per flush: the local broker's high watermark is then exact (it reports
    the start of the last batch + 1)."""
    for i in range(count):
        broker.produce(topic, [(f"k{i % 4}".encode(), str(i).encode())], partition=partition)


def _refused(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def _committed_all(pc: ParallelConsumer, offset: int) -> bool:
    parts = pc.stats().partitions
    return bool(parts) and all(p.committed == offset for p in parts)


def test_metrics_after_a_run(broker: Broker) -> None:
    topic, group = broker.new_topic("metrics", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    for partition in (0, 1):
        _produce_each(broker, topic, partition, 10)
    failed_once: set[int] = set()

    def handler(record: Record) -> None:
        if record.partition == 0 and record.offset == 4 and record.attempt == 1:
            failed_once.add(record.offset)
            raise RuntimeError("first attempt fails")

    pc = consumer(
        broker,
        handler,
        topic,
        group,
        metrics_port=0,
        metrics_host="127.0.0.1",
        retry=RetryPolicy(initial_backoff=0.05),
    )
    with pc:
        port = pc.metrics_port
        assert port
        wait_until(lambda: _committed_all(pc, 10), 30, "20 records processed and committed")
        wait_until(lambda: _metrics(pc)[("parafka_records_processed_total", ())] == 20, 5, "scrape")
        samples = _metrics(pc)
        status, health = _health(pc)
    assert samples[("parafka_records_failed_total", ())] == 1
    assert samples[("parafka_records_retried_total", ())] == 1
    assert samples[("parafka_records_dead_lettered_total", ())] == 0
    assert samples[("parafka_rebalances_total", ())] >= 1
    assert samples[("parafka_commits_total", ())] >= 1
    assert samples[("parafka_assigned_partitions", ())] == 2
    assert samples[("parafka_records_in_flight", ())] == 0
    # 21 handler runs (one retry); latency from the records' timestamps for each of them.
    assert samples[("parafka_handler_seconds_count", ())] == 21
    assert samples[("parafka_end_to_end_latency_seconds_count", ())] == 21
    assert samples[("parafka_end_to_end_latency_seconds_sum", ())] > 0
    for partition in (0, 1):
        labels = (("partition", str(partition)), ("topic", topic))
        assert samples[("parafka_committed_offset", labels)] == 10
        assert samples[("parafka_log_end_offset", labels)] == 10
        for part in ("not_fetched", "queued", "in_flight", "done_not_committed"):
            assert _lag(samples, topic, partition, part) == 0
    assert samples[("parafka_healthy", ())] == 1
    assert (status, health["status"]) == (200, "ok")
    assert _refused(port)  # the server stopped with the consumer
    assert not any(t.name == "parafka-monitor" for t in threading.enumerate())


def test_healthz_names_a_stuck_record_and_lag_shows_it(broker: Broker) -> None:
    topic, group = broker.new_topic("stuck", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    for partition in (0, 1):
        _produce_each(broker, topic, partition, 12)
    release = threading.Event()

    def handler(record: Record) -> None:
        if record.partition == 0 and record.offset == 2:
            release.wait(60)

    pc = consumer(
        broker, handler, topic, group, metrics_port=0, metrics_host="127.0.0.1", stuck_after=1.0
    )
    try:
        pc.start()
        # Other keys keep flowing; key k2 (offsets 2, 6, 10 of partition 0) waits, and so
        # does the committed position of partition 0.
        wait_until(lambda: pc.stats().processed == 21, 30, "every record but key k2's")
        wait_until(lambda: _health(pc)[0] == 503, 10, "/healthz to fail")
        body = _health(pc)[1]
        assert body["status"] == "stuck"
        [stuck] = body["stuck"]
        assert (stuck["topic"], stuck["partition"], stuck["offset"]) == (topic, 0, 2)
        assert stuck["age_seconds"] >= 1.0
        samples = _metrics(pc)
        assert samples[("parafka_stuck_partitions", ())] == 1
        # Key k2's three records: the stuck one in flight, the later ones queued behind it
        # or handed over in the same run (a run is in flight as a whole).
        in_flight = _lag(samples, topic, 0, "in_flight")
        assert in_flight >= 1
        assert in_flight + _lag(samples, topic, 0, "queued") == 3
        assert _lag(samples, topic, 0, "done_not_committed") == 7  # 3-5, 7-9, 11
        wait_until(lambda: committed(broker, group, topic, 2) == {0: 2, 1: 12}, 10, "commits")
        result = run_cli(
            ["lag", "-b", broker.bootstrap_servers, "-g", group, "--json"], cli_env(), timeout=60
        )
        assert result.returncode == 0, result.stderr
        rows = {p["partition"]: p for p in json.loads(result.stdout)["partitions"]}
        assert (rows[0]["committed"], rows[0]["log_end"], rows[0]["lag"]) == (2, 12, 10)
        assert rows[1]["lag"] == 0
        release.set()
        wait_until(lambda: _health(pc)[0] == 200, 10, "/healthz to pass once it finished")
        assert _health(pc)[1]["status"] == "ok"
    finally:
        release.set()
        pc.stop()
        pc.join(30)


def _commit(broker: Broker, group: str, offsets: list[TopicPartition]) -> list[TopicPartition]:
    """Commit as a plain consumer of `group` (assigned, never joined); returns what the
    broker gives back, metadata included."""
    plain = Consumer(broker.client_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        plain.commit(offsets=offsets, asynchronous=False)
        return list(plain.committed(offsets, timeout=10))
    finally:
        plain.close()


def test_lag_of_a_plain_consumer_group(broker: Broker) -> None:
    topic, group = broker.new_topic("plain", partitions=2), f"plain-{uuid.uuid4().hex[:8]}"
    _produce_each(broker, topic, 0, 6)
    _produce_each(broker, topic, 1, 3)
    _commit(broker, group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 3)])
    base = ["lag", "-b", broker.bootstrap_servers, "-g", group]

    table = run_cli(base, cli_env(), timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "DONE-NOT-COMMITTED",
    ]
    assert lines[1].split() == [topic, "0", "2", "6", "4", "-"]
    assert lines[2].split() == [topic, "1", "3", "3", "0", "-"]
    assert "total lag 4" in lines[3]

    as_json = run_cli([*base, "-t", topic, "--json"], cli_env(), timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["group"] == group and report["total_lag"] == 4
    assert [
        (p["partition"], p["committed"], p["log_end"], p["lag"]) for p in report["partitions"]
    ] == [
        (0, 2, 6, 4),
        (1, 3, 3, 0),
    ]

    unknown = run_cli(["lag", "-b", broker.bootstrap_servers, "-g", "no-such-group"], cli_env(), 60)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "parafka: error: group 'no-such-group' has no committed offsets (unknown group, or it "
        "never committed): check the name with -g"
    ]


def test_lag_of_a_parafka_group(broker: Broker) -> None:
    """A group parafka ran: committed up to the log end. Its commit metadata, when the broker
    keeps it, shows records done above the committed offset."""
    topic, group = broker.new_topic("pfk", partitions=1), f"pfk-{uuid.uuid4().hex[:8]}"
    _produce_each(broker, topic, 0, 8)
    consumer(broker, lambda record: None, topic, group).run(until_idle=1.0)
    base = ["lag", "-b", broker.bootstrap_servers, "-g", group, "--json"]
    done = run_cli(base, cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["partitions"]
    assert (row["committed"], row["log_end"], row["lag"]) == (8, 8, 0)

    # As if a record had hung at offset 3 while 5 and 6 finished above it.
    metadata = encode_completed(3, [5, 6])
    [back] = _commit(broker, group, [TopicPartition(topic, 0, 3, metadata=metadata)])
    report = run_cli(base, cli_env(), timeout=60)
    assert report.returncode == 0, report.stderr
    [row] = json.loads(report.stdout)["partitions"]
    assert (row["committed"], row["lag"]) == (3, 5)
    # The local broker drops commit metadata: then the count is unknown, not zero.
    assert row["done_not_committed"] == (2 if back.metadata == metadata else None)
    text = run_cli(base[:-1], cli_env(), timeout=60)
    assert text.stdout.splitlines()[1].split()[-1] == ("2" if back.metadata else "-")


def test_run_serves_metrics_until_it_exits(broker: Broker, tmp_path: Path) -> None:
    """`parafka run --metrics-port`: served while running, released at exit."""
    topic, group = broker.new_topic("cli-metrics", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    broker.produce(topic, [(b"k%d" % (i % 5), b"v") for i in range(50)])
    port, out = free_port(), tmp_path / "out.txt"
    args = run_args(broker, RECORD_OFFSETS, topic, group, "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}"

    def processed() -> float:
        status, text = _get(f"{url}/metrics")
        families = text_string_to_metric_families(text) if status == 200 else []
        return next(
            (
                s.value
                for f in families
                for s in f.samples
                if s.name == "parafka_records_processed_total"
            ),
            -1.0,
        )

    with started_cli(
        [*args, "--until-idle", "3"], cli_env(PARAFKA_TEST_OUT=str(out)), tmp_path
    ) as proc:
        wait_until(lambda: line_count(out) == 50 or proc.poll() is not None, 30, "50 records")
        wait_until(lambda: processed() == 50 or proc.poll() is not None, 10, "the scrape")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert _get(f"{url}/healthz")[0] == 200
        assert wait_exit(proc, 30, tmp_path) == 0
    assert _refused(port)
