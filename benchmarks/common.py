"""Helpers shared by the benchmarks: workloads, producing, the baseline loops, timing, tables.

Every run is timed from the first handler call to the end of the last one, so the time a
fresh consumer group takes to get its partitions (about 3 s on the local broker) and the
time to leave the group are not counted. The handler notes the timestamps itself.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Message
from rich.console import Console
from rich.table import Table

from parafka import ParallelConsumer, Record, Stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/

# The baseline loops and fast producing are shared with the demo (re-exported here).
from examples.demo.baselines import batch_threads_loop as batch_threads_loop
from examples.demo.baselines import plain_loop as plain_loop
from examples.demo.kafka import produce as produce
from parafka.testing import KafkaBroker, LocalBroker

console = Console()
if not console.is_terminal:  # piped to a file: do not squeeze tables into 80 columns
    console.width = 150

# (partition, key, value): what a workload produces, one tuple per record.
Item = tuple[int, bytes, bytes]
Ordering = Literal["key", "partition", "unordered"]
GroupType = Literal["consumer", "share"]
BROKERS = ("local", "kafka")


# -- CPU time from /proc (Linux) -------------------------------------------------------------
def thread_sched(
    pid: int | str = "self", names: bool = False
) -> dict[int, tuple[str, float, float]]:
    """The scheduler's figures for each thread of process `pid`, in seconds so far: thread id
    -> (its kernel name, or "" unless `names`; time it ran; time it waited runnable for a
    core), from /proc/<pid>/task/*/schedstat (nanoseconds). Waiting for a lock or the GIL is
    sleep, not counted. Empty when the process has ended or the kernel keeps no such figures
    (not Linux)."""
    times: dict[int, tuple[str, float, float]] = {}
    try:
        listing = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return times
    for task in listing:
        try:
            ran, waited, _ = (task / "schedstat").read_text().split()
            name = (task / "comm").read_text().strip() if names else ""
        except (OSError, ValueError):
            continue  # the thread ended meanwhile, or no schedstat here
        times[int(task.name)] = (name, int(ran) / 1e9, int(waited) / 1e9)
    return times


# -- brokers ----------------------------------------------------------------------------------
def add_broker_option(parser: argparse.ArgumentParser) -> None:
    """`--broker local|kafka`: which broker the whole run (every peer and baseline) uses."""
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="local",
        help="local: the local development broker; kafka: Apache Kafka (parafka.testing."
        "KafkaBroker, needs java and mvn; the first run resolves it from Maven Central)",
    )


def open_broker(name: str) -> LocalBroker | KafkaBroker:
    """The broker `--broker` names, not started yet: use it in a `with` block."""
    if name == "kafka":
        return KafkaBroker()
    if name == "local":
        return LocalBroker()
    raise ValueError(f"unknown broker {name!r}: use one of {', '.join(BROKERS)}")


def broker_label(broker: LocalBroker | KafkaBroker) -> str:
    """How a report names the broker it ran on."""
    if isinstance(broker, KafkaBroker):
        return f"Apache Kafka {broker.version}"
    return "local broker"


# A share group's session, heartbeat and offset reset are group settings on the broker: the
# share consumer refuses them as client settings.
_CLASSIC_GROUP_ONLY = ("session.timeout.ms", "heartbeat.interval.ms")


def fresh_group(prefix: str) -> str:
    """A consumer group id no other run uses, so every run reads the topic from the start."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- workloads -------------------------------------------------------------------------------
def keyed_items(
    count: int, keys: int, partitions: int, values: Iterable[bytes], seed: int
) -> list[Item]:
    """`count` records over `keys` keys, each key used equally often, in a shuffled order.

    A key always goes to partition `key index % partitions`, so the partitions get the
    same number of records (partition mode is not slowed by one partition being longer).
    """
    rng = random.Random(seed)
    key_indexes = [i % keys for i in range(count)]
    rng.shuffle(key_indexes)
    return [
        (k % partitions, b"key-%d" % k, value)
        for k, value in zip(key_indexes, values, strict=False)
    ]


def sleep_items(
    count: int, keys: int, partitions: int, seed: int, low_ms: float = 10.0, high_ms: float = 30.0
) -> list[Item]:
    """Records whose value is the handler's sleep time in milliseconds, drawn uniformly."""
    rng = random.Random(seed)
    values = [b"%.3f" % rng.uniform(low_ms, high_ms) for _ in range(count)]
    return keyed_items(count, keys, partitions, values, seed + 1)


def mean_sleep_seconds(items: Sequence[Item]) -> float:
    return statistics.fmean(float(value) for _, _, value in items) / 1000.0


# -- timing ----------------------------------------------------------------------------------
class Span:
    """First handler start to last handler end, noted by the handlers themselves.

    Updates race harmlessly between threads: an error of a few microseconds at most on
    runs that last seconds.
    """

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def begin(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def end(self) -> None:
        now = time.perf_counter()
        if now > self.last:
            self.last = now

    def tick(self) -> None:
        """`begin()` and `end()` in one call, for a handler that does nothing."""
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if now > self.last:
            self.last = now

    @property
    def seconds(self) -> float:
        if self.first is None:
            return float("nan")
        return self.last - self.first


class NoOp:
    """A handler that does nothing but note the time of each call (list.append is atomic
    under the GIL, so worker threads may call it), so the run can be timed whole and in
    its second half, once the client's queue is full and the handler time measured (the
    start of a short run weighs on the whole-run rate, on both sides: RESULTS.md, tenth
    stop)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._note = self.times.append

    def __call__(self, _item: object) -> None:
        self._note(time.perf_counter())

    @property
    def span(self) -> Span:
        """First call to last."""
        span = Span()
        if self.times:
            span.first, span.last = min(self.times), max(self.times)
        return span

    def second_half_rate(self) -> float:
        """records/s from the call that started the second half of the calls to the last."""
        times = sorted(self.times)
        half = len(times) // 2
        if half == 0 or times[-1] <= times[half]:
            return float("nan")
        return (len(times) - 1 - half) / (times[-1] - times[half])


@dataclass
class Result:
    """What one timed run measured."""

    name: str
    records: int
    seconds: float
    handler_ms: float | None = None  # measured mean handler time, when the handler notes it

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


class SleepJob:
    """The IO-bound handler: sleeps for the milliseconds held in the record's value."""

    def __init__(self) -> None:
        self.span = Span()
        self.durations: list[float] = []  # list.append is atomic: safe from many threads

    def run(self, value: bytes) -> None:
        span, clock = self.span, time.perf_counter
        span.begin()
        started = clock()
        time.sleep(float(value) / 1000.0)
        ended = clock()
        self.durations.append(ended - started)
        if ended > span.last:
            span.last = ended

    def record(self, record: Record) -> None:
        """Handler for parafka."""
        self.run(record.value or b"0")

    def message(self, message: Message) -> None:
        """Handler for the baseline loops, which see confluent_kafka messages."""
        self.run(message.value() or b"0")

    def result(self, name: str, records: int) -> Result:
        mean = statistics.fmean(self.durations) * 1000.0 if self.durations else None
        return Result(name, records, self.span.seconds, mean)


# -- the loops being compared (shared with the demo) -----------------------------------
def parafka_run(
    handler: Callable[[Record], object],
    config: Mapping[str, Any],
    topic: str,
    count: int,
    ordering: Ordering,
    concurrency: int,
    timeout: float = 600.0,
    share_group: str | None = None,
    tracing: bool = False,
) -> int:
    """Run a ParallelConsumer in a fresh group until `count` records are processed.

    `share_group`: join this share group (`group_type="share"`, made with
    `KafkaBroker.new_share_group`) instead of a fresh consumer group. `tracing`: with
    OpenTelemetry spans (tracing.py; the caller installs the tracer provider).
    Returns how many it processed; raises if it stopped early or ran out of time.
    """
    group_type: GroupType = "consumer" if share_group is None else "share"
    if share_group is not None:
        config = {k: v for k, v in config.items() if k not in _CLASSIC_GROUP_ONLY}
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=str(config["bootstrap.servers"]),
        group_id=share_group or fresh_group(f"bench-{ordering}"),
        topics=topic,
        ordering=ordering,
        concurrency=concurrency,
        kafka_config=config,
        group_type=group_type,
        tracing=tracing,
    )
    label = f"parafka {'share ' if share_group else ''}{ordering}/{concurrency}"
    consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while consumer.stats().processed < count:
            if not consumer.is_running:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{label} processed "
                    f"{consumer.stats().processed} of {count} records in {timeout:.0f} s"
                )
            time.sleep(0.05)
    finally:
        consumer.stop()
        final = consumer.join(60)
    if final is None:
        raise RuntimeError(f"{label} did not stop within 60 s")
    if final.processed < count:
        raise RuntimeError(f"{label} stopped after {final.processed} of {count} records")
    return final.processed


# -- timing a consumer ---------------------------------------------------------------------
def parafka_rate(
    handler: Callable[..., Any] | str, config: dict[str, Any], topic: str, count: int, **kw: Any
) -> float:
    """records/s while the consumer worked through `count` records, from its stats() (see
    `Progress`)."""
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=str(config["bootstrap.servers"]),
        group_id=fresh_group("bench"),
        topics=topic,
        kafka_config=config,
        **kw,
    )
    consumer.start()
    progress = Progress(count)
    try:
        progress.follow(consumer.stats, lambda: consumer.is_running, 600)
    finally:
        consumer.stop()
        consumer.join(60)
    if not progress.finished:
        raise RuntimeError(f"parafka {kw} did not process {count} records")
    return progress.rate


class Progress:
    """A consumer's rate from its stats() snapshots, timed by the snapshots' own clock.

    stats() is a snapshot the loop refreshes four times a second. Timed by when a benchmark
    read it, a run's start and end are each up to 0.25 s off, which on a run of a second or
    two is tens of percent. Each snapshot carries the time it was taken (`Stats.at`), so the
    rate is taken between two snapshots: the first that shows records done, and the last
    taken before the count was reached (the end of the run, when the consumer may have run
    out of records meanwhile, is left out). NaN when the run was too short for two.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.first: tuple[float, int] | None = None  # (at, processed)
        self.last: tuple[float, int] | None = None
        self.finished = False

    def saw(self, stats: Stats) -> bool:
        """Note a snapshot; True once it shows `count` records processed."""
        if stats.processed >= self.count:
            self.finished = True
        elif stats.processed and self.first is None:
            self.first = (stats.at, stats.processed)
        elif self.first is not None and stats.at > self.first[0]:
            self.last = (stats.at, stats.processed)
        return self.finished

    def follow(
        self, stats: Callable[[], Stats], running: Callable[[], bool], timeout: float
    ) -> None:
        """Read `stats()` every 10 ms until the count is reached, `running()` is False or
        `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running():
            if self.saw(stats()):
                return
            time.sleep(0.01)

    @property
    def rate(self) -> float:
        if self.first is None or self.last is None:
            return float("nan")
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


# -- printing ----------------------------------------------------------------------------------
def table(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    caption: str | None = None,
    text_columns: int = 1,
) -> Table:
    """A rich table: the first `text_columns` columns left-aligned, the numbers right."""
    result = Table(title=title, caption=caption, caption_justify="left")
    for index, header in enumerate(headers):
        result.add_column(header, justify="left" if index < text_columns else "right")
    for row in rows:
        result.add_row(*row)
    return result


def print_runs(runs: Sequence[tuple[int, str, float, float]], label: str) -> None:
    """Every timed run, (round, `label`, seconds, records/s), as a table."""
    console.print()
    console.print(
        table(
            "Every run (records/s)",
            ["round", label, "seconds", "records/s"],
            [[str(r), name, f"{s:.2f}", fmt_rate(rate)] for r, name, s, rate in runs],
            text_columns=2,
        )
    )


def note(text: str) -> None:
    """A short progress line."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"
