"""Share groups (KIP-932, `group_type="share"`, experimental) on Apache Kafka.

Several members share one partition and nothing is lost; a member killed with SIGKILL
while it holds records gives them back to the group, and another member gets them with a
higher delivery count; a record that keeps failing is dead-lettered or rejected after its
last attempt. Each handler call is counted per offset.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from parafka import ParallelConsumer, Record
from parafka.core.deadletter import ATTEMPTS, OFFSET, header_text
from parafka.testing import KafkaBroker

from .helpers import share_group, wait_until
from .test_cli import HANDLERS, cli_env, processed

RECORD_OFFSETS = f"{HANDLERS / 'record_offsets.py'}:handle"
SHARE_HOLD = f"{HANDLERS / 'share_hold.py'}:handle"


class Calls:
    """Handler calls per offset (and the attempt each call saw), from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offsets: Counter[int] = Counter()
        self.attempts: dict[int, list[int]] = {}

    def note(self, record: Record) -> None:
        with self.lock:
            self.offsets[record.offset] += 1
            self.attempts.setdefault(record.offset, []).append(record.attempt)


def share_consumer(
    broker: KafkaBroker, handler: Any, topic: str, group: str, **kwargs: Any
) -> ParallelConsumer:
    return ParallelConsumer(
        handler,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        topics=[topic],
        group_type="share",
        ordering="unordered",
        **kwargs,
    )


def test_three_members_share_one_partition_and_lose_nothing(
    kafka_broker: KafkaBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread, an asyncio and a process-executor member in one share group on a
    one-partition topic. Records come in batches of 10 until every member has run some
    (a member's poll takes whole producer batches, up to about max_buffered records, so a
    topic filled in one batch would go to the first member to join). Every record runs
    once (nothing failed, so nothing is redelivered), and the outputs of the thread and
    asyncio members reach the output topic."""
    topic, out = kafka_broker.new_topic("share-in"), kafka_broker.new_topic("share-out")
    group = share_group(kafka_broker)
    calls = Calls()

    def handle(record: Record) -> bytes | None:
        time.sleep(0.005)
        calls.note(record)
        return record.value

    async def handle_async(record: Record) -> bytes | None:
        await asyncio.sleep(0.005)
        calls.note(record)
        return record.value

    in_file = tmp_path / "process.txt"
    monkeypatch.setenv("PARAFKA_TEST_OUT", str(in_file))  # the spawned workers read it
    monkeypatch.setenv("PARAFKA_TEST_SLEEP_MS", "5")
    small = {"max_buffered": 20, "concurrency": 4}
    members = [
        share_consumer(kafka_broker, handle, topic, group, output_topic=out, **small),
        share_consumer(kafka_broker, handle_async, topic, group, output_topic=out, **small),
        share_consumer(
            kafka_broker, RECORD_OFFSETS, topic, group, executor="process", workers=2, **small
        ),
    ]
    produced = 0
    try:
        for member in members:
            member.start()
        deadline = time.monotonic() + 60  # joins take seconds; more on a loaded machine
        while produced < 200 or not all(m.stats().processed for m in members):
            assert time.monotonic() < deadline, [m.stats().processed for m in members]
            kafka_broker.produce(topic, [(None, str(produced + i).encode()) for i in range(10)])
            produced += 10
            time.sleep(0.05)  # the pace of the input, not a wait for a result

        def all_done() -> bool:
            return sum(m.stats().processed for m in members) >= produced

        wait_until(all_done, 60, f"{produced} records processed by the share group")
    finally:
        for member in members:
            member.stop()
        finals = [member.join(30) for member in members]
    ran = calls.offsets + Counter(offset for _, offset in processed(in_file))
    assert set(ran) == set(range(produced)), sorted(set(range(produced)) - set(ran))
    assert all(final is not None for final in finals)
    released = sum(final.retried for final in finals if final is not None)
    assert released == 0 and set(ran.values()) == {1}, ran.most_common(5)
    accepted = [final.processed for final in finals if final is not None]
    assert sum(accepted) == produced and all(accepted), accepted
    outputs = kafka_broker.consume_all(out, expected=accepted[0] + accepted[1], timeout=30)
    assert sorted(int(m.value() or b"") for m in outputs) == sorted(calls.offsets)


def test_records_held_by_a_killed_member_go_to_another(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """`parafka run --group-type share` takes records and hangs on them; SIGKILL; a new
    member gets every record, those the killed one had started with attempt >= 2."""
    count = 40
    topic, group = kafka_broker.new_topic("share-kill"), share_group(kafka_broker)
    kafka_broker.produce(topic, [(None, str(i).encode()) for i in range(count)])
    started = tmp_path / "started.txt"
    args = [
        sys.executable, "-m", "parafka.cli", "run", SHARE_HOLD, "-b",
        kafka_broker.bootstrap_servers, "-g", group, "-t", topic, "--group-type", "share",
        "--ordering", "unordered", "-c", "4", "--no-dashboard",
    ]  # fmt: skip
    with open(tmp_path / "stderr", "wb") as err:
        holder = subprocess.Popen(
            args,
            env=cli_env(PARAFKA_TEST_OUT=str(started)),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:

        def holding() -> bool:
            assert holder.poll() is None, (tmp_path / "stderr").read_text()
            return started.exists() and started.read_text().count("\n") >= 4

        wait_until(holding, 60, "the first member to hold 4 records")
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
    held = {int(line.split()[0]) for line in started.read_text().splitlines()}
    calls = Calls()
    with share_consumer(kafka_broker, calls.note, topic, group, concurrency=8) as member:
        wait_until(lambda: len(calls.offsets) == count, 60, "the second member to run all")
    assert member.stats().processed == count
    assert set(calls.offsets.values()) == {1}
    assert all(calls.attempts[offset] == [2] for offset in held), (held, calls.attempts)


@pytest.mark.parametrize("on_failure", ["dead-letter", "skip"])
def test_a_poison_record_leaves_after_its_last_attempt(
    kafka_broker: KafkaBroker, on_failure: str
) -> None:
    """Offsets 3 and 11 always fail: each is tried max_attempts (3) times, then written to
    the dead-letter topic and accepted, or rejected (skip); every other record runs once."""
    count, poison = 20, {3, 11}
    topic, group = kafka_broker.new_topic("share-poison"), share_group(kafka_broker)
    dlq = kafka_broker.new_topic("share-dlq") if on_failure == "dead-letter" else None
    kafka_broker.produce(topic, [(None, str(i).encode()) for i in range(count)])
    calls = Calls()

    def handle(record: Record) -> None:
        calls.note(record)
        if record.offset in poison:
            raise ValueError(f"poison {record.offset}")

    member = share_consumer(
        kafka_broker, handle, topic, group, max_attempts=3, on_failure=on_failure,
        dead_letter_topic=dlq,
    )  # fmt: skip
    with member:

        def settled() -> bool:
            stats = member.stats()
            return stats.processed == count - 2 and (
                stats.dead_lettered + stats.skipped_after_failure == 2
            )

        wait_until(settled, 60, "every record accepted, dead-lettered or rejected")
        time.sleep(0.5)  # a rejected or accepted record must not come back
    stats = member.stats()
    assert {o: calls.offsets[o] for o in poison} == dict.fromkeys(poison, 3)
    assert {o: n for o, n in calls.offsets.items() if o not in poison} == {
        o: 1 for o in range(count) if o not in poison
    }
    assert all(calls.attempts[o] == [1, 2, 3] for o in poison), calls.attempts
    assert (stats.failed, stats.retried) == (6, 4)
    if dlq is None:
        assert (stats.skipped_after_failure, stats.dead_lettered) == (2, 0)
        return
    assert (stats.dead_lettered, stats.skipped_after_failure) == (2, 0)
    letters = kafka_broker.consume_all(dlq, expected=2, timeout=30)
    assert {header_text(m.headers(), OFFSET) for m in letters} == {"3", "11"}
    assert {header_text(m.headers(), ATTEMPTS) for m in letters} == {"3"}
