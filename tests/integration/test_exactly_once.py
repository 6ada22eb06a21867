"""Exactly-once: outputs and offsets in one transaction; a read_committed reader sees
every input once, across restarts and kill -9."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from parafka.testing import Broker, KafkaBroker, LocalBroker

from .helpers import committed, consumer, end_offsets, produce_keyed, wait_until
from .test_cli import HANDLERS, cli_env, run_args, run_cli, started_cli

ECHO = f"{HANDLERS / 'echo_source.py'}:handle"


def sources(broker: LocalBroker, out: str, at_least: int) -> Counter[tuple[int, int]]:
    """(partition, offset) of each source record, counted over the output topic as a
    read_committed reader sees it (the client's default isolation level)."""
    found = broker.consume_all(out, expected=at_least, timeout=30)
    return Counter((d["p"], d["o"]) for d in (json.loads(m.value() or b"{}") for m in found))


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_every_input_once_in_the_output(broker: LocalBroker, executor: str) -> None:
    topic, out = broker.new_topic("eos", 4), broker.new_topic("eos-out", 2)
    produce_keyed(broker, topic, 1000, keys=50)
    handler = "tests.handlers.echo_source:handle" if executor == "process" else ECHO_FN
    pc = consumer(broker, handler, topic, "g-" + uuid.uuid4().hex[:8], output_topic=out,
                  exactly_once=True, executor=executor, commit_interval=0.3,
                  workers=2 if executor == "process" else None)  # fmt: skip
    stats = pc.run(until_idle=1.5)
    assert stats.processed == 1000 and stats.commits >= 1
    seen = sources(broker, out, 1000)
    assert sum(seen.values()) == 1000 and set(seen.values()) == {1}
    group = pc.settings.group_id
    assert committed(broker, group, topic, 4) == end_offsets(broker, topic, 4, 1000)


def _echo(record):  # type: ignore[no-untyped-def]
    from tests.handlers.echo_source import handle

    return handle(record)


ECHO_FN = _echo


def transactions(logs: Path) -> int:
    """How many transactions the CLI run logging to `logs` has committed."""
    return (logs / "stderr").read_text(errors="replace").count("transaction committed")


def run_and_kill(args: list[str], logs: Path, delay: float) -> None:
    """Start the CLI, let it commit a few transactions, kill -9 it `delay` s after one."""
    with started_cli(args, cli_env(), logs) as proc:
        wait_until(lambda: transactions(logs) >= 2, 60, "two transactions")
        before = transactions(logs)
        wait_until(lambda: transactions(logs) > before, 10, "the next transaction")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def test_exactly_once_survives_kill_9(broker: LocalBroker, tmp_path: Path) -> None:
    """kill -9 mid-run, three times, then run to the end: each input once in the output.

    The local broker shows the records of aborted transactions to read_committed readers
    (it sends no aborted-transaction list), so the kills land between two transaction
    bursts (parafka produces a transaction's outputs only when it commits it); records in
    flight, held outputs and uncommitted progress are still lost at every kill.
    """
    total = 20_000
    topic, out = broker.new_topic("eos-kill", 4), broker.new_topic("eos-kill-out", 2)
    produce_keyed(broker, topic, total, keys=100)
    group = f"g-{uuid.uuid4().hex[:8]}"
    args = run_args(broker, ECHO, topic, group, "-o", out, "--exactly-once", "-c", "4",
                    "--commit-interval", "1", "--log-level", "DEBUG")  # fmt: skip
    rng = random.Random(7)
    for kill in range(3):
        run_and_kill(args, tmp_path / f"run{kill}", rng.uniform(0.0, 0.4))
    result = run_cli([*args, "--until-idle", "3"], cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = sources(broker, out, total)
    missing = total - len(seen)
    duplicated = sum(count - 1 for count in seen.values())
    assert (missing, duplicated) == (0, 0)
    assert committed(broker, group, topic, 4) == end_offsets(broker, topic, 4, total)


class OutputWatch:
    """Watches an output topic's transactions from outside: a partition whose high
    watermark (read_uncommitted) is above its last stable offset (what a read_committed
    reader may see) holds records of a transaction that is still open."""

    def __init__(self, broker: Broker, topic: str, partitions: int) -> None:
        def client(isolation: str) -> Consumer:
            return Consumer(
                broker.client_config(
                    **{"group.id": f"watch-{uuid.uuid4().hex[:8]}", "isolation.level": isolation}
                )
            )

        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._uncommitted, self._committed = client("read_uncommitted"), client("read_committed")

    def open_transaction(self) -> bool:
        for tp in self.partitions:
            _, high = self._uncommitted.get_watermark_offsets(tp, 10, cached=False)
            _, stable = self._committed.get_watermark_offsets(tp, 10, cached=False)
            if stable < high:
                return True
        return False

    def close(self) -> None:
        self._uncommitted.close()
        self._committed.close()


def read_committed_all(broker: Broker, topic: str, partitions: int) -> list[dict[str, int]]:
    """Every record of `topic` a read_committed reader sees, to the end of each partition
    (call when no transaction is open)."""
    reader = Consumer(
        broker.client_config(
            **{
                "group.id": f"read-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
    )
    reader.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[dict[str, int]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: no end of partitions {at_end} in 60 s"
            for message in reader.consume(1000, 0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    at_end.add(message.partition() or 0)
                    continue
                at_end.discard(message.partition() or 0)
                found.append(json.loads(message.value() or b"{}"))
    finally:
        reader.close()
    return found


ECHO_BURST = f"{HANDLERS / 'echo_burst.py'}:handle"


def test_exactly_once_on_kafka_survives_kill_9_inside_transactions(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """kill -9 at least five times, then run to the end: a read_committed reader sees each
    of every input's four outputs exactly once. Every other kill waits for an open
    transaction on the output topic (records written, not yet committed: inside a
    transaction's produce burst, about 3.5 MB here) and kills at once; the others land at a
    random moment up to 1.5 s after a transaction committed. Kills go on (at most ten) until
    one has left its transaction open.

    Apache Kafka hides aborted transactions from read_committed readers, so kills inside a
    burst are fair here (the local broker would show their records). A transaction left
    open by a killed producer is aborted by the broker after `transaction.timeout.ms` (5 s
    here); until then read_committed readers, and the group's next owner fetching its
    offsets, wait for it.
    """
    total, partitions, outputs = 24_000, 2, 4
    topic, out = kafka_broker.new_topic("eos-kill", 4), kafka_broker.new_topic("eos-out", 2)
    produce_keyed(kafka_broker, topic, total, keys=100)
    group = f"g-{uuid.uuid4().hex[:8]}"
    args = run_args(kafka_broker, ECHO_BURST, topic, group, "-o", out, "--exactly-once",
                    "-c", "2", "--commit-interval", "1.5", "-X", "transaction.timeout.ms=5000",
                    "--log-level", "DEBUG")  # fmt: skip
    rng = random.Random(12)
    watch = OutputWatch(kafka_broker, out, partitions)
    left_open: list[bool] = []  # per burst kill: its transaction was left open (aborted later)
    kills = 0
    try:
        while kills < 5 or (not any(left_open) and kills < 10):
            logs = tmp_path / f"run{kills}"
            with started_cli(args, cli_env(), logs) as proc:
                first = lambda logs=logs: transactions(logs) >= 1  # noqa: E731
                wait_until(first, 60, "a first transaction")
                if kills % 2 == 0:  # inside a burst
                    wait_until(watch.open_transaction, 30, "a transaction writing its outputs")
                else:
                    before = transactions(logs)
                    wait_until(lambda: transactions(logs) > before, 10, "the next transaction")  # noqa: B023
                    time.sleep(rng.uniform(0.0, 1.5))  # a random point of the cycle
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            killed = time.monotonic()
            wait_until(lambda: not watch.open_transaction(), 60, "open transactions to end")
            if kills % 2 == 0:
                # Markers follow a commit within milliseconds; an open transaction that
                # lasts seconds was left by the kill and aborted at its timeout.
                left_open.append(time.monotonic() - killed > 2.0)
            kills += 1
    finally:
        watch.close()
    assert any(left_open), f"no kill landed inside a transaction: {left_open}"
    result = run_cli([*args, "--until-idle", "3"], cli_env(), timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    found = read_committed_all(kafka_broker, out, partitions)
    seen = Counter((d["p"], d["o"], d["i"]) for d in found)
    missing = total * outputs - len(seen)
    duplicated = sum(count - 1 for count in seen.values())
    assert (missing, duplicated) == (0, 0), f"{kills} kills; inside a transaction: {left_open}"
    assert committed(kafka_broker, group, topic, 4) == end_offsets(kafka_broker, topic, 4, total)
