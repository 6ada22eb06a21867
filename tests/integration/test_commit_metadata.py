"""Commit metadata end to end, on Apache Kafka (the local broker drops it).

Consumer A finishes the records above a stuck one and commits the offset of the stuck record
with the finished ones in the metadata; it is then killed with SIGKILL (its whole process
group, workers included). Consumer B, in the same group, must skip exactly what A finished
and run everything else once: each handler call is a line in a file per consumer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from parafka.codec import decode_completed, encode_completed
from parafka.testing import KafkaBroker

from .helpers import group_config, wait_until
from .test_cli import HANDLERS, SRC, cli_env, processed, run_cli

ROOT = SRC.parent
HANG_ON = f"{HANDLERS / 'hang_on.py'}:handle"
RECORD_OFFSETS = f"{HANDLERS / 'record_offsets.py'}:handle"
KEYS = 6
RECORDS = {0: 60, 1: 30}  # per partition; the stuck records are all in partition 0
SETTLED = 1.5  # seconds without a change in A's commits or handler calls


def produce(broker: KafkaBroker, topic: str) -> None:
    """Partition p gets RECORDS[p] records; offset i has key k{i % KEYS}."""
    for partition, count in RECORDS.items():
        records = [(f"k{i % KEYS}".encode(), str(i).encode()) for i in range(count)]
        broker.produce(topic, records, partition=partition)


def done_by_a(ordering: str, hung: list[int]) -> set[tuple[int, int]]:
    """What A finishes: all but the hung records and, in key order, the later records of
    their keys (each waits behind its key's hung record)."""
    blocked = {(0, o) for o in hung}
    if ordering == "key":
        for h in hung:
            blocked |= {(0, o) for o in range(h, RECORDS[0]) if o % KEYS == h % KEYS}
    everything = {(p, o) for p, count in RECORDS.items() for o in range(count)}
    return everything - blocked


def committed_with_metadata(broker: KafkaBroker, group: str, topic: str) -> list[TopicPartition]:
    """The group's commits (offset and metadata) per partition, asked again for up to 30 s
    while the broker answers with an error (a new group's coordinator may be moving)."""
    plain = Consumer(broker.client_config(**{"group.id": group, "enable.auto.commit": False}))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                return list(
                    plain.committed([TopicPartition(topic, p) for p in RECORDS], timeout=10)
                )
            except KafkaException:  # e.g. NOT_COORDINATOR, flagged as not retriable
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        plain.close()


def start_consumer(
    spec: dict[str, Any], env: dict[str, str], logs: Path
) -> subprocess.Popen[bytes]:
    """Run tests.handlers.run_consumer with `spec` in a new session (its own process group)."""
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.handlers.run_consumer", json.dumps(spec)],
            stdout=out,
            stderr=err,
            env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT), env["PYTHONPATH"]])},
            cwd=ROOT,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def run_a_then_b(
    broker: KafkaBroker,
    tmp_path: Path,
    ordering: str,
    executor: str,
    hung: list[int],
    max_metadata_bytes: int = 4096,
) -> tuple[TopicPartition, dict[str, Any]]:
    """A finishes what it can and commits, is killed; B runs the rest. Returns A's last
    commit of partition 0 and B's stats; asserts each record ran exactly once in all."""
    topic, group = broker.new_topic("meta", len(RECORDS)), f"meta-{uuid.uuid4().hex[:8]}"
    produce(broker, topic)
    expected = done_by_a(ordering, hung)
    common = {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group,
        "topics": [topic],
        "ordering": ordering,
        "executor": executor,
        "workers": 2 if executor == "process" else None,
        "commit_interval": 0.2,
        "max_metadata_bytes": max_metadata_bytes,
        "kafka_config": group_config(),
    }
    out_a, out_b = tmp_path / "a.txt", tmp_path / "b.txt"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env_a = cli_env(PARAFKA_TEST_OUT=str(out_a), PARAFKA_TEST_HANG_ON=",".join(map(str, hung)))
    a = start_consumer({**common, "handler": HANG_ON}, env_a, tmp_path / "a")
    try:
        last_commit = wait_settled(broker, group, topic, a, out_a, tmp_path / "a")
        base = last_commit.offset
        done = {(0, o) for o in decode_completed(base, last_commit.metadata)}
        done |= {(0, o) for o in range(base)} | {(1, o) for o in range(RECORDS[1])}
        lag = run_cli(["lag", "-b", broker.bootstrap_servers, "-g", group, "--json"], cli_env(), 60)
        assert lag.returncode == 0, lag.stderr
        rows = {row["partition"]: row for row in json.loads(lag.stdout)["partitions"]}
        assert (rows[0]["committed"], rows[0]["lag"]) == (base, RECORDS[0] - base)
        assert rows[0]["done_not_committed"] == len(done) - base - RECORDS[1]
        assert rows[1]["lag"] == 0
    finally:
        kill_group(a)

    b = start_consumer(
        {**common, "handler": RECORD_OFFSETS, "until_idle": 2.0},
        cli_env(PARAFKA_TEST_OUT=str(out_b)),
        tmp_path / "b",
    )
    try:
        assert b.wait(90) == 0, (tmp_path / "b" / "stderr").read_text()[-3000:]
    finally:
        kill_group(b)
    stats = json.loads((tmp_path / "b" / "stdout").read_text().splitlines()[-1])
    ran_a, ran_b = Counter(processed(out_a)), Counter(processed(out_b))
    everything = {(p, o) for p, count in RECORDS.items() for o in range(count)}
    # What A committed as done (offset + metadata) B skips, and it runs everything else once.
    assert set(ran_b) == everything - done and set(ran_b.values()) == {1}, (
        f"B ran {sorted(set(ran_b) & done)} which A committed as done (offset {base}, "
        f"metadata {last_commit.metadata!r}); B missed {sorted(everything - done - set(ran_b))}"
    )
    assert stats["skipped_already_done"] == len(done) - base - RECORDS[1]
    assert set(ran_a) >= done and set(ran_a.values()) == {1}
    # Exactly what the ordering allows was done by A and committed: nothing ran twice.
    assert set(ran_a) == done == expected, (
        f"A ran but never reported {sorted(set(ran_a) - done)}; A never ran "
        f"{sorted(expected - set(ran_a))}"
    )
    return last_commit, stats


def wait_settled(
    broker: KafkaBroker, group: str, topic: str, a: subprocess.Popen[bytes], out: Path, logs: Path
) -> TopicPartition:
    """Wait until A's commits and its handler calls stop changing (for SETTLED seconds, many
    commit intervals) with partition 1 committed to its end; return partition 0's commit."""
    seen: tuple[object, ...] = ()
    since = time.monotonic()

    def settled() -> bool:
        nonlocal seen, since
        assert a.poll() is None, (logs / "stderr").read_text()
        first, second = committed_with_metadata(broker, group, topic)
        now = (
            first.offset,
            first.metadata,
            second.offset,
            out.stat().st_size if out.exists() else 0,
        )
        if now != seen:
            seen, since = now, time.monotonic()
        return second.offset == RECORDS[1] and time.monotonic() - since >= SETTLED

    wait_until(settled, 60, "A's commits to settle with the stuck records still unfinished")
    first, _ = committed_with_metadata(broker, group, topic)
    return first


RUN_HOLD = (
    "engine defect: records are handed to an executor in runs (the thread executor's runs in "
    "unordered mode, the process executor's chunks in every mode) and a run is reported only "
    "when all of it is done, so a hung record holds the rest of its run: the records of it "
    "that finished before it are never reported done (the next owner runs them again) and "
    "those after it never start while it hangs, even with idle workers"
)
HELD = pytest.mark.xfail(strict=True, reason=RUN_HOLD)
# A thread run's length depends on how many records were queued when it was handed over:
# when the stuck record happens to run alone the test passes, so this one cannot be strict.
SOMETIMES_HELD = pytest.mark.xfail(strict=False, reason=RUN_HOLD)


@pytest.mark.parametrize(
    ("ordering", "executor"),
    [
        ("key", "thread"),
        pytest.param("unordered", "thread", marks=SOMETIMES_HELD),
        pytest.param("key", "process", marks=HELD),
        pytest.param("unordered", "process", marks=HELD),
    ],
)
def test_the_next_owner_skips_what_was_done_above_a_stuck_record(
    kafka_broker: KafkaBroker, tmp_path: Path, ordering: str, executor: str
) -> None:
    last_commit, _ = run_a_then_b(kafka_broker, tmp_path, ordering, executor, hung=[5])
    assert last_commit.metadata  # Apache Kafka returns the metadata it was given


@pytest.mark.xfail(
    strict=True,
    reason=(
        "engine defect: with max_metadata_bytes equal to the final done set's encoding (18 "
        "bytes here), the larger sets on the way there throttle the partition and the commits "
        "never carry the metadata again once the set fits: the last commit is a plain offset "
        "below records A finished, so the next owner runs them again"
    ),
)
def test_metadata_at_its_size_cap_still_travels(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """Several stuck records (key order) leave a ragged done set; the cap is exactly its
    encoding's length."""
    hung = [5, 8, 13, 27, 36]  # keys k5, k2, k1, k3, k0: only k4 keeps flowing
    above = {o for p, o in done_by_a("key", hung) if p == 0 and o > min(hung)}
    size = len(encode_completed(min(hung), above))
    last_commit, _ = run_a_then_b(
        kafka_broker, tmp_path, "key", "thread", hung, max_metadata_bytes=size
    )
    assert len(last_commit.metadata or "") == size
