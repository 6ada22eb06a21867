"""The local broker helper: it answers, round-trips records, and leaves no process behind."""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from parafka.testing import LocalBroker
from parafka.testing.broker import BrokerNotAvailable, BrokerProcess


def _gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_topics_and_records_round_trip(broker: LocalBroker) -> None:
    topic = f"four-{time.monotonic_ns()}"
    broker.create_topic(topic, partitions=4)
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(
        topic, timeout=10
    )
    assert len(metadata.topics[topic].partitions) == 4

    sent = [(f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(100)]
    assert broker.produce(topic, sent) == 100
    got = broker.consume_all(topic, expected=100, timeout=20)

    assert sorted((m.key(), m.value()) for m in got) == sorted(sent)
    by_key: defaultdict[bytes | None, list[bytes | None]] = defaultdict(list)
    for message in got:
        by_key[message.key()].append(message.value())
    for key, values in by_key.items():  # one key, one partition: sent order is kept
        assert values == [v for k, v in sent if k == key]


def test_produce_to_one_partition(broker: LocalBroker) -> None:
    topic = broker.new_topic(prefix="one", partitions=3)
    assert broker.produce(topic, [(None, b"a"), (b"k", b"b")], partition=2) == 2
    got = broker.consume_all(topic, expected=2, timeout=20)
    assert [(m.partition(), m.value()) for m in got] == [(2, b"a"), (2, b"b")]


def test_new_topic_names_are_unique(broker: LocalBroker) -> None:
    names = {broker.new_topic(prefix="uniq") for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("uniq-") for name in names)


def test_existing_topic_is_an_error_unless_exist_ok(broker: LocalBroker) -> None:
    topic = broker.new_topic()
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        broker.create_topic(topic)
    broker.process.create_topic(topic, exist_ok=True)


def test_consume_all_stops_at_the_deadline(broker: LocalBroker) -> None:
    topic = broker.new_topic()
    broker.produce(topic, [(None, b"only")])
    started = time.monotonic()
    got = broker.consume_all(topic, expected=2, timeout=2)
    assert [m.value() for m in got] == [b"only"]
    assert time.monotonic() - started < 5


def test_client_config_tunes_groups_and_takes_extras(broker: LocalBroker) -> None:
    extra: dict[str, str | int] = {"group.id": "g", "session.timeout.ms": 7000}
    config = broker.client_config(**extra)
    assert config == {
        "bootstrap.servers": broker.bootstrap_servers,
        "session.timeout.ms": 7000,
        "heartbeat.interval.ms": 500,
        "group.id": "g",
    }


def test_leaving_the_context_ends_the_process() -> None:
    with LocalBroker() as local:
        pid = local.process.pid
        log_path = local.process.log_path
        assert pid is not None and log_path is not None
        os.kill(pid, 0)  # running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(log_path)


def test_port_in_use_fails_fast_and_names_the_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        process = BrokerProcess(port=port)
        started = time.monotonic()
        with pytest.raises(BrokerNotAvailable, match=rf"port {port} .*--port"):
            process.start(timeout=10)
        assert time.monotonic() - started < 2
        assert process.pid is None


def test_stop_is_idempotent() -> None:
    process = BrokerProcess()
    process.stop()  # never started: nothing to do
    process.start(timeout=10)
    pid = process.pid
    assert pid is not None
    process.stop()
    process.stop()
    assert process.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_broker_dies_with_a_killed_parent() -> None:
    script = (
        "import sys\n"
        "from parafka.testing.broker import BrokerProcess\n"
        "broker = BrokerProcess()\n"
        "broker.start(timeout=10)\n"
        "print(broker.pid, broker.log_path, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
    finally:
        parent.kill()  # SIGKILL: no atexit, no cleanup in the parent
        parent.wait()
    fields = line.split()
    assert len(fields) == 2 and fields[0].isdigit(), f"no broker was started: {line!r}"
    pid, log_dir = int(fields[0]), os.path.dirname(fields[1])
    try:
        deadline = time.monotonic() + 10
        while not _gone(pid):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                pytest.fail(f"broker {pid} outlived its killed parent by 10 s")
            time.sleep(0.05)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)  # the killed parent could not clean up
