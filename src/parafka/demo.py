"""A one-minute demo: 2,000 slow jobs, a plain serial loop against parafka's three modes.

Run it with `make demo` or `python -m parafka.demo`. It starts a throwaway local broker,
produces jobs that each sleep 10-30 ms, processes them serially (a prefix only: all of
them would take 40 s) and with parafka in key, partition and unordered mode, checks the
order each mode promises and that every job ran, and prints a table. The exit status is
non-zero when a check fails.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from parafka import ParallelConsumer, Record
from parafka.testing import LocalBroker

JOBS = 2_000
SERIAL_JOBS = 200
PARTITIONS = 4
KEYS = 100
CONCURRENCY = 50
Mode = Literal["key", "partition", "unordered"]
MODES: tuple[Mode, ...] = ("key", "partition", "unordered")
SEED = 7

console = Console()
if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
    console.width = 120


def say(text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)


@dataclass
class Run:
    """What the handler saw during one run: one entry per handler call."""

    # (started, ended, partition, key, offset, job id); list.append is thread-safe.
    calls: list[tuple[float, float, int, bytes | None, int, int]] = field(default_factory=list)

    def handle(self, partition: int, key: bytes | None, offset: int, value: bytes) -> None:
        job, sleep_ms = value.split(b":")
        started = time.perf_counter()
        time.sleep(float(sleep_ms) / 1000.0)
        self.calls.append((started, time.perf_counter(), partition, key, offset, int(job)))

    def record(self, record: Record) -> None:
        self.handle(record.partition, record.key, record.offset, record.value or b"0:0")

    @property
    def seconds(self) -> float:
        """First handler start to last handler end: group join and shutdown excluded."""
        return max(c[1] for c in self.calls) - min(c[0] for c in self.calls)

    def order_violations(self, shard: Callable[[int, bytes | None], Hashable]) -> int:
        """Calls of one shard that overlapped the previous one or went back in offsets."""
        by_shard: dict[Hashable, list[tuple[float, float, int]]] = defaultdict(list)
        for started, ended, partition, key, offset, _ in self.calls:
            by_shard[shard(partition, key)].append((started, ended, offset))
        bad = 0
        for calls in by_shard.values():
            calls.sort()
            for before, after in itertools.pairwise(calls):
                if after[0] < before[1] or after[2] <= before[2]:
                    bad += 1
        return bad

    def busiest_partition(self) -> tuple[int, int, float]:
        """(partition, jobs, seconds of handler time) of the partition with the most work."""
        jobs: dict[int, int] = defaultdict(int)
        busy: dict[int, float] = defaultdict(float)
        for started, ended, partition, _, _, _ in self.calls:
            jobs[partition] += 1
            busy[partition] += ended - started
        partition = max(busy, key=busy.__getitem__)
        return partition, jobs[partition], busy[partition]

    def missing(self, expected: int) -> int:
        return expected - len({c[5] for c in self.calls})


def produce_jobs(broker: LocalBroker, topic: str) -> None:
    rng = random.Random(SEED)
    broker.produce(
        topic,
        (
            (b"customer-%d" % rng.randrange(KEYS), b"%d:%.2f" % (job, rng.uniform(10, 30)))
            for job in range(JOBS)
        ),
    )


def serial(broker: LocalBroker, topic: str) -> Run:
    """The plain loop everyone starts with: consume, handle one record at a time."""
    run = Run()
    config = broker.client_config(
        **{
            "group.id": f"demo-serial-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
        }
    )
    consumer = Consumer(config)
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    try:
        while len(run.calls) < SERIAL_JOBS and time.monotonic() < deadline:
            for message in consumer.consume(min(1000, SERIAL_JOBS - len(run.calls)), 0.5):
                if message.error() is None:
                    run.handle(
                        message.partition() or 0,
                        message.key(),
                        message.offset() or 0,
                        message.value() or b"0:0",
                    )
            if run.calls:
                done = consumer.position(consumer.assignment())
                consumer.commit(offsets=[tp for tp in done if tp.offset >= 0], asynchronous=False)
    finally:
        consumer.close()
    return run


def parallel(broker: LocalBroker, topic: str, mode: Mode) -> Run:
    run = Run()
    consumer = ParallelConsumer(
        run.record,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"demo-{mode}-{uuid.uuid4().hex[:8]}",
        topics=topic,
        ordering=mode,
        concurrency=CONCURRENCY,
        kafka_config=broker.client_config(),
    )
    consumer.start()
    deadline = time.monotonic() + 60
    next_note = time.monotonic() + 2
    try:
        while consumer.stats().processed < JOBS and consumer.is_running:
            if time.monotonic() > deadline:
                say(f"[red]{mode}: gave up waiting after 60 s[/red]")
                break
            if time.monotonic() >= next_note:
                say(f"  {mode}: {consumer.stats().processed:,} of {JOBS:,} done")
                next_note += 2
            time.sleep(0.05)
    finally:
        consumer.stop()
        consumer.join(30)
    return run


def main() -> int:
    """Run the demo; returns 0 when every check passed, 1 otherwise."""
    say("starting a local broker")
    with LocalBroker() as broker:
        topic = broker.new_topic("demo-jobs", PARTITIONS)
        produce_jobs(broker, topic)
        say(f"produced {JOBS:,} jobs (10-30 ms each) over {KEYS} keys to {PARTITIONS} partitions")

        say(f"plain serial loop on the first {SERIAL_JOBS} jobs (all {JOBS:,} would take ~40 s)")
        baseline = serial(broker, topic)
        serial_rate = len(baseline.calls) / baseline.seconds
        say(f"  serial: {serial_rate:,.0f} jobs/s")

        rows: list[list[str]] = [
            [
                "serial loop",
                f"{len(baseline.calls):,} (prefix)",
                f"{baseline.seconds:.2f}",
                f"{serial_rate:,.0f}",
                "1.0x",
                "in order (one at a time)",
                "n/a (prefix)",
            ]
        ]
        failed = False
        for mode in MODES:
            say(f"parafka, ordering={mode}, concurrency={CONCURRENCY} (joining a fresh group)")
            run = parallel(broker, topic, mode)
            if not run.calls:
                say(f"[red]{mode}: no job was processed[/red]")
                rows.append([f"parafka {mode}", "0", "-", "-", "-", "-", "[red]FAILED[/red]"])
                failed = True
                continue
            rate = len(run.calls) / run.seconds
            say(f"  {mode}: {len(run.calls):,} jobs in {run.seconds:.2f} s = {rate:,.0f} jobs/s")
            if mode == "partition":
                partition, jobs, busy = run.busiest_partition()
                say(
                    f"  one job at a time per partition: partition {partition} held {jobs} jobs "
                    f"= {busy:.1f} s of handler time, the floor for this mode"
                )
            order_text, order_ok = check_order(run, mode)
            missing = run.missing(JOBS)
            extra = len(run.calls) - (JOBS - missing)
            complete_ok = missing == 0
            complete_text = f"all {JOBS:,}" if complete_ok else f"{missing:,} MISSING"
            if extra:
                complete_text += f", {extra} run twice"
            failed = failed or not (order_ok and complete_ok)
            rows.append(
                [
                    f"parafka {mode}",
                    f"{len(run.calls):,}",
                    f"{run.seconds:.2f}",
                    f"{rate:,.0f}",
                    f"{rate / serial_rate:.1f}x",
                    order_text if order_ok else f"[red]{order_text}[/red]",
                    complete_text if complete_ok else f"[red]{complete_text}[/red]",
                ]
            )

    print_table(rows)
    if failed:
        console.print("[red]a check failed[/red]")
        return 1
    console.print("[green]every check passed[/green]")
    return 0


def check_order(run: Run, mode: Mode) -> tuple[str, bool]:
    if mode == "key":
        bad = run.order_violations(lambda partition, key: (partition, key))
        return ("per key: ok" if not bad else f"per key: {bad} out of order"), not bad
    if mode == "partition":
        bad = run.order_violations(lambda partition, _key: partition)
        return ("per partition: ok" if not bad else f"per partition: {bad} out of order"), not bad
    return "none promised", True


def print_table(rows: list[list[str]]) -> None:
    table = Table(
        title=f"{JOBS:,} jobs sleeping 10-30 ms, {PARTITIONS} partitions, {KEYS} keys",
        caption=(
            f"seconds: first job started to last job ended (group join excluded). "
            f"The serial loop ran on the first {SERIAL_JOBS} jobs only; parafka ran all "
            f"{JOBS:,} with concurrency {CONCURRENCY}. Order check: within a key (key mode) "
            "or partition (partition mode), no two jobs overlapped and offsets only grew."
        ),
        caption_justify="left",
    )
    for header in ("mode", "records", "seconds", "records/s", "vs serial", "order check"):
        table.add_column(header, justify="left" if header in ("mode", "order check") else "right")
    table.add_column("processed")
    for row in rows:
        table.add_row(*row)
    console.print()
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
