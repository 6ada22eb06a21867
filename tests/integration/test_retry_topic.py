"""--retry-topic on a real broker: 1,000 keys, 1% of records failing until their third
attempt. Parked records let their source partition's committed offset move on; every
record is done; each key's records take effect in offset order (the last run of each
record after the last run of every older one of its key, runs repeated after a kill
included), with one consumer, across a kill -9, and across a second consumer joining;
the one-consumer and the joining tests run on Apache Kafka too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from parafka import ParallelConsumer, Record
from parafka.core.parking import origin
from parafka.core.retry import RetryPolicy
from parafka.testing import Broker
from tests.integration.helpers import (
    committed,
    group_config,
    produce_keyed,
    wait_until,
    written_lines,
)

ROOT = Path(__file__).resolve().parents[2]
HANDLER = f"{ROOT / 'tests' / 'handlers' / 'park_flaky.py'}:handle"
RECORDS, KEYS, PARTITIONS = 5000, 1000, 4
FAILING = {i for i in range(RECORDS) if i % 100 == 7}  # 1%, as in park_flaky.py
QUICK = {"max_attempts": 2, "initial_backoff": 0.05, "jitter": 0.0}


class Outputs:
    """What the handler did, in order: (key, source partition, source offset)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def handle(self, record: Record) -> None:
        parked = origin(record.headers)
        partition, offset, before = record.partition, record.offset, 0
        if parked is not None:
            partition, offset, before = parked.partition, parked.offset, parked.attempts
        if int(record.value or b"0") in FAILING and before + record.attempt < 3:
            raise RuntimeError(f"{partition}@{offset} fails on attempt {before + record.attempt}")
        with self.lock:
            self.lines.append(((record.key or b"").decode(), partition, offset))

    def done(self) -> set[tuple[int, int]]:
        with self.lock:
            return {(p, o) for _, p, o in self.lines}


def read_lines(path: Path) -> list[tuple[str, int, int]]:
    found = []
    for line in written_lines(path):
        key, partition, offset = line.split()
        found.append((key, int(partition), int(offset)))
    return found


def assert_every_record_done_in_key_order(lines: list[tuple[str, int, int]]) -> None:
    """All RECORDS done; per key, the last run of each record comes after the last run of
    every older record of that key (the order its effects stand in)."""
    assert len({(p, o) for _, p, o in lines}) == RECORDS
    last: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)
    for position, (key, partition, offset) in enumerate(lines):
        last[key][(partition, offset)] = position
    assert len(last) == KEYS
    for key, runs in last.items():
        positions = [position for _, position in sorted(runs.items())]
        assert positions == sorted(positions), f"key {key}: records took effect out of order"


def topics(broker: Broker) -> tuple[str, str, str]:
    return (
        broker.new_topic("park", PARTITIONS),
        broker.new_topic("park-retry", PARTITIONS),
        broker.new_topic("park-dlq", 1),
    )


def settings(broker: Broker, group: str, source: str, retry: str, dlq: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group,
        "topics": [source],
        "retry_topic": retry,
        "dead_letter_topic": dlq,
        "commit_interval": 0.2,
        "kafka_config": group_config(),
    }


@pytest.mark.any_broker
def test_parked_records_let_the_partition_move_on_and_keys_keep_their_order(
    broker: Broker,
) -> None:
    source, retry, dlq = topics(broker)
    produce_keyed(broker, source, RECORDS, keys=KEYS)
    group = f"park-{uuid.uuid4().hex[:8]}"
    outputs = Outputs()
    pc = ParallelConsumer(
        outputs.handle,
        retry=RetryPolicy(**QUICK),
        park_backoff=0.5,
        concurrency=16,
        **settings(broker, group, source, retry, dlq),
    ).start()
    passed: set[tuple[int, int]] = set()  # records committed past before they were done
    try:
        deadline = time.monotonic() + 60
        while len(outputs.done()) < RECORDS:
            assert time.monotonic() < deadline, f"{len(outputs.done())} of {RECORDS} done"
            positions = committed(broker, group, source, PARTITIONS)
            done = outputs.done()
            passed |= {
                (p, o)
                for p, position in positions.items()
                for o in range(max(0, position))
                if (p, o) not in done
            }
            time.sleep(0.2)
        # Fences lift once the retry topic is committed past the keys' last parked records.
        wait_until(lambda: pc.stats().fenced_keys == 0, 10, "the fences to lift")
    finally:
        pc.stop()
        stats = pc.join(30)
    assert stats is not None
    assert passed, "no source offset was committed past a parked record before it was done"
    with outputs.lock:
        lines = list(outputs.lines)
    assert len(lines) == RECORDS  # no record ran twice: no crash, no rebalance
    assert_every_record_done_in_key_order(lines)
    # The first failing record of each key is parked for its failure, every later record of
    # that key behind it (the five failing records of a key, i % 1000 alike, among them).
    assert stats.parked == len({i % KEYS for i in FAILING}) and stats.dead_lettered == 0
    assert stats.parked_behind >= len(FAILING) - stats.parked
    ends = {p: 0 for p in range(PARTITIONS)}
    for _, partition, offset in lines:
        ends[partition] = max(ends[partition], offset + 1)
    assert committed(broker, group, source, PARTITIONS) == ends


def _start(spec: dict[str, Any], out: Path, logs: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFKA_")}
    env["PARAFKA_TEST_OUT"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "src")]))
    with open(logs / "stdout", "wb") as stdout, open(logs / "stderr", "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.handlers.run_consumer", json.dumps(spec)],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )


def test_a_kill_9_leaves_no_record_behind_and_the_fences_are_rebuilt(
    broker: Broker, tmp_path: Path
) -> None:
    source, retry, dlq = topics(broker)
    produce_keyed(broker, source, RECORDS, keys=KEYS)
    group = f"park-kill-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out.txt"
    spec = {
        "handler": HANDLER,
        "max_attempts": 2,
        "park_backoff": 0.5,
        "concurrency": 16,
        **settings(broker, group, source, retry, dlq),
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _start(spec, out, tmp_path / "a")
    try:
        # Killed once half the records ran, while parked ones wait in the retry topic.
        wait_until(lambda: len(read_lines(out)) >= 2500, 40, "the first consumer's progress")
        parked = lambda: bool(broker.consume_all(retry, expected=5, timeout=0.5))  # noqa: E731
        wait_until(parked, 20, "records parked on the retry topic")
        assert a.poll() is None, (tmp_path / "a" / "stderr").read_text()
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
        a.wait(30)
    before = {(p, o) for _, p, o in read_lines(out)}
    assert len(before) < RECORDS, "the kill must land while parked records wait"
    # Parked records the group has not finished: B's fences must be rebuilt from them.
    ends = {p: 0 for p in range(PARTITIONS)}
    for message in broker.consume_all(retry, expected=10**6, timeout=1):
        partition, offset = message.partition() or 0, message.offset() or 0
        ends[partition] = max(ends[partition], offset + 1)
    positions = committed(broker, group, retry, PARTITIONS)
    assert any(end > max(positions[p], 0) for p, end in ends.items()), (ends, positions)
    b = _start({**spec, "until_idle": 2.5}, out, tmp_path / "b")
    try:
        assert b.wait(60) == 0, (tmp_path / "b" / "stderr").read_text()
    finally:
        if b.poll() is None:
            os.killpg(b.pid, signal.SIGKILL)
    stats = json.loads((tmp_path / "b" / "stdout").read_text().splitlines()[-1])
    assert stats["dead_lettered"] == 0
    assert_every_record_done_in_key_order(read_lines(out))


@pytest.mark.any_broker
def test_a_second_consumer_joining_keeps_every_key_in_order(broker: Broker) -> None:
    source, retry, dlq = topics(broker)
    produce_keyed(broker, source, RECORDS, keys=KEYS)
    group = f"park-join-{uuid.uuid4().hex[:8]}"
    outputs = Outputs()

    def slow(record: Record) -> None:  # slow enough for the join to land mid-run
        time.sleep(0.002)
        outputs.handle(record)

    common = {
        "retry": RetryPolicy(**QUICK),
        "park_backoff": 0.5,
        "concurrency": 8,
        **settings(broker, group, source, retry, dlq),
    }
    first = ParallelConsumer(slow, **common).start()
    second: ParallelConsumer | None = None
    try:
        wait_until(lambda: len(outputs.done()) >= 800, 40, "the first consumer's progress")
        second = ParallelConsumer(slow, **common).start()
        wait_until(lambda: len(outputs.done()) >= RECORDS, 60, "every record")
        wait_until(lambda: second.stats().rebalances > 0, 10, "the second consumer's assignment")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        first_stats = first.join(30)
        second_stats = second.join(30) if second is not None else None
    assert first_stats is not None and second_stats is not None
    assert second_stats.processed > 0, "the second consumer must have taken partitions"
    with outputs.lock:
        assert_every_record_done_in_key_order(list(outputs.lines))


def test_the_cli_parks_with_retry_topic(broker: Broker, tmp_path: Path) -> None:
    from tests.integration.test_cli import cli_env, error_lines, run_args, run_cli

    source, retry, dlq = topics(broker)
    produce_keyed(broker, source, 300, keys=30)
    out = tmp_path / "out.txt"
    group = f"park-cli-{uuid.uuid4().hex[:8]}"
    args = run_args(broker, HANDLER, source, group, "--retry-topic", retry,  # type: ignore[arg-type]
                    "--dead-letter-topic", dlq, "--max-attempts", "2", "--park-backoff", "0.2",
                    "--until-idle", "3", "--no-dashboard")  # fmt: skip
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(out)), timeout=90)
    assert result.returncode == 0, result.stderr
    assert not error_lines(result.stderr)
    assert len({(p, o) for _, p, o in read_lines(out)}) == 300


def test_a_missing_retry_topic_is_one_line_with_the_fix(broker: Broker, tmp_path: Path) -> None:
    from tests.integration.test_cli import cli_env, error_lines, run_args, run_cli

    source = broker.new_topic("park", 1)
    missing = f"no-retry-{uuid.uuid4().hex[:8]}"
    args = run_args(broker, HANDLER, source, "g-missing-retry",  # type: ignore[arg-type]
                    "--retry-topic", missing, "--until-idle", "1.5")  # fmt: skip
    result = run_cli(args, cli_env(PARAFKA_TEST_OUT=str(tmp_path / "out.txt")), timeout=60)
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result.stderr)
    assert f"retry topic {missing!r} does not exist" in line and "--retry-topic" in line
    assert "Traceback" not in result.stderr
