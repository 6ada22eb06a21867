"""Commit metadata end to end, on Apache Kafka (the local broker drops it).

Consumer A finishes the records above a stuck one and commits the offset of the stuck record
with the finished ones in the metadata; it is then killed with SIGKILL (its whole process
group, workers included). Consumer B, in the same group, must skip exactly what A finished
and run everything else once: each handler call is a line in a file per consumer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from parafka.core.codec import decode_completed, encode_completed
from parafka.testing import KafkaBroker

from .helpers import committed_partitions, group_config, wait_until
from .test_cli import HANDLERS, SRC, cli_env, processed, run_cli

ROOT = SRC.parent
HANG_ON = f"{HANDLERS / 'hang_on.py'}:handle"
RECORD_OFFSETS = f"{HANDLERS / 'record_offsets.py'}:handle"
SETTLED = 1.5  # seconds without a change in A's commits or handler calls
STALLED = 6.0  # seconds without a change that mean A will not get further


@dataclass(frozen=True)
class Load:
    """What is produced: `keys[p][o]` is the key of offset `o` of partition `p`. The stuck
    records are all in partition 0; every other partition is finished by A."""

    keys: dict[int, list[str]]

    @classmethod
    def cyclic(cls, counts: dict[int, int], keys: int) -> Load:
        """Offset o of each partition has key k{o % keys}."""
        return cls({p: [f"k{o % keys}" for o in range(n)] for p, n in counts.items()})

    def count(self, partition: int) -> int:
        return len(self.keys[partition])

    def everything(self) -> set[tuple[int, int]]:
        return {(p, o) for p, keys in self.keys.items() for o in range(len(keys))}


SMALL = Load.cyclic({0: 60, 1: 30}, keys=6)


def produce(broker: KafkaBroker, topic: str, load: Load) -> None:
    for partition, keys in load.keys.items():
        records = [(key.encode(), str(o).encode()) for o, key in enumerate(keys)]
        broker.produce(topic, records, partition=partition)


def done_by_a(load: Load, ordering: str, hung: list[int]) -> set[tuple[int, int]]:
    """What A finishes: all but the hung records and, in key order, the later records of
    their keys (each waits behind its key's hung record)."""
    blocked = {(0, o) for o in hung}
    if ordering == "key":
        keys = load.keys[0]
        for h in hung:
            blocked |= {(0, o) for o in range(h, len(keys)) if keys[o] == keys[h]}
    return load.everything() - blocked


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
    load: Load,
    ordering: str,
    executor: str,
    hung: list[int],
    sleep_ms: int = 0,
    held: tuple[list[int], Callable[[Path], None]] | None = None,
    **settings: Any,
) -> tuple[TopicPartition, dict[str, Any]]:
    """A finishes what it can and commits, is killed; B runs the rest. Returns A's last
    commit of partition 0 and B's stats; asserts each record ran exactly once in all.
    `held`: partition-0 offsets that wait in A until a file exists, and what to do before
    waiting for A to settle (given A's log folder; it must release them by creating the
    file it is given as `release`). `settings` are more ParallelConsumer arguments."""
    partitions = len(load.keys)
    topic, group = broker.new_topic("meta", partitions), f"meta-{uuid.uuid4().hex[:8]}"
    produce(broker, topic, load)
    expected = done_by_a(load, ordering, hung)
    common = {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group,
        "topics": [topic],
        "ordering": ordering,
        "executor": executor,
        "workers": 2 if executor == "process" else None,
        "commit_interval": 0.2,
        "kafka_config": group_config(),
        **settings,
    }
    out_a, out_b = tmp_path / "a.txt", tmp_path / "b.txt"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env_a = cli_env(
        PARAFKA_TEST_OUT=str(out_a),
        PARAFKA_TEST_HANG_ON=",".join(map(str, hung)),
        PARAFKA_TEST_SLEEP_MS=str(sleep_ms),
        PARAFKA_TEST_HOLD_ON=",".join(map(str, held[0])) if held else "",
        PARAFKA_TEST_RELEASE=str(tmp_path / "release"),
    )
    a = start_consumer({**common, "handler": HANG_ON}, env_a, tmp_path / "a")
    try:
        if held is not None:
            held[1](tmp_path / "a")
            assert (tmp_path / "release").exists()
        last_commit = wait_settled(broker, group, topic, load, a, out_a, tmp_path / "a")
        base = last_commit.offset
        done = {(0, o) for o in decode_completed(base, last_commit.metadata)}
        done |= {(0, o) for o in range(base)}
        done |= {(p, o) for p in range(1, partitions) for o in range(load.count(p))}
        above = len(done) - base - (len(load.everything()) - load.count(0))
        lag = run_cli(["lag", "-b", broker.bootstrap_servers, "-g", group, "--json"], cli_env(), 60)
        assert lag.returncode == 0, lag.stderr
        rows = {row["partition"]: row for row in json.loads(lag.stdout)["partitions"]}
        assert (rows[0]["committed"], rows[0]["lag"]) == (base, load.count(0) - base)
        assert rows[0]["done_not_committed"] == above
        assert all(rows[p]["lag"] == 0 for p in range(1, partitions))
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
    everything = load.everything()
    # What A committed as done (offset + metadata) B skips, and it runs everything else once.
    assert set(ran_b) == everything - done and set(ran_b.values()) == {1}, (
        f"B ran {sorted(set(ran_b) & done)[:50]} which A committed as done (offset {base}, "
        f"metadata {last_commit.metadata!r:.200}); B missed "
        f"{sorted(everything - done - set(ran_b))[:50]}"
    )
    assert stats["skipped_already_done"] == above
    assert set(ran_a) >= done and set(ran_a.values()) == {1}
    # Exactly what the ordering allows was done by A and committed: nothing ran twice.
    assert set(ran_a) == done == expected, (
        f"A ran but never reported {sorted(set(ran_a) - done)[:50]}; A never ran "
        f"{sorted(expected - set(ran_a))[:50]}"
    )
    return last_commit, stats


def wait_settled(
    broker: KafkaBroker,
    group: str,
    topic: str,
    load: Load,
    a: subprocess.Popen[bytes],
    out: Path,
    logs: Path,
) -> TopicPartition:
    """Wait until A's commits and its handler calls stop changing (for SETTLED seconds, many
    commit intervals) with every partition but 0 committed to its end; return partition 0's
    commit."""
    seen: tuple[object, ...] = ()
    since = time.monotonic()
    partitions = len(load.keys)

    def settled() -> bool:
        nonlocal seen, since
        assert a.poll() is None, (logs / "stderr").read_text()
        commits = committed_partitions(broker, group, topic, partitions)
        now = (
            *((c.offset, c.metadata) for c in commits),
            out.stat().st_size if out.exists() else 0,
        )
        if now != seen:
            seen, since = now, time.monotonic()
        rest_done = all(commits[p].offset == load.count(p) for p in range(1, partitions))
        quiet = time.monotonic() - since
        # A stopped moving with another partition unfinished: something else is held too.
        assert rest_done or not out.exists() or quiet < STALLED, (
            f"A stopped making progress for {STALLED} s with commits {now[:-1]} short of "
            f"the other partitions' ends {[load.count(p) for p in range(1, partitions)]}"
        )
        return rest_done and quiet >= SETTLED

    wait_until(settled, 90, "A's commits to settle with the stuck records still unfinished")
    return committed_partitions(broker, group, topic, partitions)[0]


# A hung record once held back its executor chunk-mates: those finished before it were
# reported only with it, and those after it never started. Executors now report a hung
# chunk's finished records and give its unstarted ones to other workers (chunks.py; the
# process workers' watchdog, processes.py); these tests fail without that.
@pytest.mark.parametrize(
    ("ordering", "executor"),
    [
        ("key", "thread"),
        ("unordered", "thread"),
        ("key", "process"),
        ("unordered", "process"),
    ],
)
def test_the_next_owner_skips_what_was_done_above_a_stuck_record(
    kafka_broker: KafkaBroker, tmp_path: Path, ordering: str, executor: str
) -> None:
    """5 ms per record: the thread executor then runs one record per chunk (2 ms of work),
    so nothing shares a chunk with the stuck record."""
    last_commit, _ = run_a_then_b(
        kafka_broker, tmp_path, SMALL, ordering, executor, hung=[5], sleep_ms=5
    )
    assert last_commit.metadata  # Apache Kafka returns the metadata it was given


def test_a_fast_thread_handler_stuck_late_holds_no_other_record(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Microsecond handlers: by offset 3500 the thread executor's chunks hold many records,
    and they run on the control thread, so the hang is handed over to the stand-by thread
    (executors/handover.py), on Apache Kafka. Not earlier: until the handler time is
    measured (from 10 ms down), chunks go to worker threads, and those queued before the
    switch to the control thread still run there; a CI run hung at offset 1500 on one of
    them (the workers' rescue then did its job, with no stand-by to log)."""
    load = Load.cyclic({0: 4000, 1: 10}, keys=2000)
    run_a_then_b(kafka_broker, tmp_path, load, "unordered", "thread", hung=[3500], log_level="INFO")
    log = (tmp_path / "a" / "stderr").read_text()
    assert "goes on with the loop" in log, log[-3000:]


def near_the_cap(cap: int, keys: int = 4, seed: int = 12) -> tuple[Load, list[int]]:
    """One partition whose offset o has a random key of `keys`; the first record of two keys
    hangs, so A finishes about half the records, scattered (their bitset does not
    compress): the longest such load whose done set encodes in `cap - 100` to `cap` bytes."""
    rng = random.Random(seed)
    names = ["k0", "k1", *(f"k{rng.randrange(keys)}" for _ in range(40_000))]
    hung = [0, 1]  # k0 and k1: everything of theirs waits

    def size(count: int) -> int:
        load = Load({0: names[:count], 1: names[:10]})
        above = {o for p, o in done_by_a(load, "key", hung) if p == 0}
        return len(encode_completed(0, above, max_bytes=1 << 20))

    low, high = 1000, len(names)
    while low < high:  # the largest count whose encoding fits the cap
        middle = (low + high + 1) // 2
        low, high = (middle, high) if size(middle) <= cap else (low, middle - 1)
    assert cap - 100 <= size(low) <= cap, size(low)
    return Load({0: names[:low], 1: names[:10]}), hung


def test_metadata_near_its_size_cap_travels(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    """About 12,000 scattered offsets done above the stuck one: commit metadata within 100
    bytes of the 4096-byte default (Kafka's offset.metadata.max.bytes) is kept by Apache
    Kafka and lets the next owner skip exactly those records."""
    cap = 4096
    load, hung = near_the_cap(cap)
    last_commit, stats = run_a_then_b(
        kafka_broker, tmp_path, load, "key", "thread", hung,
        concurrency=32, max_buffered=3 * load.count(0), max_metadata_bytes=cap,
    )  # fmt: skip
    assert cap - 100 <= len(last_commit.metadata or "") <= cap
    assert stats["skipped_already_done"] > load.count(0) // 3


def test_a_throttled_partition_commits_metadata_again_once_it_fits(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Twenty held records leave holes: the done set above the stuck record does not fit
    the cap, so A commits plain offsets and throttles the partition. Once they are
    released the set is one run, fits, and A's last commit carries it again."""
    load = Load.cyclic({0: 2000, 1: 10}, keys=2000)
    hung, holes = [5], list(range(100, 2000, 95))
    final = set(range(6, 2000))
    cap = len(encode_completed(5, final)) + 4
    assert len(encode_completed(5, final - set(holes), max_bytes=1 << 20)) > cap

    def release_once_throttled(logs: Path) -> None:
        def throttled() -> bool:
            return "over the" in (logs / "stderr").read_text(errors="replace")

        wait_until(throttled, 60, f"A to throttle partition 0 (metadata over {cap} bytes)")
        (tmp_path / "release").touch()

    last_commit, _ = run_a_then_b(
        kafka_broker, tmp_path, load, "unordered", "thread", hung, sleep_ms=5,
        held=(holes, release_once_throttled), concurrency=32, max_metadata_bytes=cap,
    )  # fmt: skip
    assert decode_completed(5, last_commit.metadata) == final
