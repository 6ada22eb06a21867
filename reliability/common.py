"""What every reliability scenario shares: the workload, reading the handler's reports back
from the output topic, counting missing and duplicate records, starting `parafka run`, and
sampling a process's memory.

The scenarios (crash_loop.py, rebalance_churn.py, connection_loss.py, memory.py, soak.py)
import this module; so do their short versions in tests/integration/test_reliability.py.
Starting the CLI reuses the test suite's own helpers (tests/integration/test_cli.py).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import Consumer, TopicPartition

from parafka.testing import LocalBroker
from tests.integration.helpers import committed
from tests.integration.test_cli import cli_env, wait_exit

HANDLER_FILE = Path(__file__).resolve().parent / "handler.py"
REPORT = f"{HANDLER_FILE}:report"  # sleeps, then returns (p, o, k, instance, pid, t) as JSON
SLEEP = f"{HANDLER_FILE}:sleep"  # sleeps, returns nothing
INSTANCE_ENV = "PARAFKA_RELIABILITY_INSTANCE"
# A dead member is noticed after session.timeout.ms: 2 s instead of the tests' usual 6 s
# brings a restarted consumer's first assignment from about 11 s to about 4 s on the local
# broker (measured), so more kills fit in a run.
FAST_FAILOVER = ("-X", "session.timeout.ms=2000", "-X", "heartbeat.interval.ms=300")

Echo = Callable[[str], None]


def quiet(_line: str) -> None:
    """An `echo` that prints nothing (the short versions in the test suite)."""


def say(line: str) -> None:
    """An `echo` that prints at once (a scenario run as a script)."""
    print(line, flush=True)


def scenario_parser(doc: str, logs: str) -> argparse.ArgumentParser:
    """The command line every scenario starts from: its docstring's first paragraph as the
    description and `--logs` (where each `parafka run` writes its stdout and stderr)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, default=Path(logs))
    return parser


def verdict(lines: Iterable[str], ok: bool | None) -> int:
    """Print the report, then PASS or FAIL (nothing for a measurement without a limit);
    return the script's exit code."""
    for line in lines:
        print(line)
    if ok is not None:
        print("PASS" if ok else "FAIL")
    return 0 if ok is not False else 1


def new_group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the workload ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """`records` records over `keys` keys; key k goes to partition k % partitions; each value
    is its handler time in microseconds, drawn uniformly from [min_us, max_us], then `padding`
    bytes."""

    records: int
    partitions: int = 8
    keys: int = 1000
    min_us: int = 1000
    max_us: int = 20000
    padding: int = 0
    seed: int = 1

    @property
    def mean_seconds(self) -> float:
        return (self.min_us + self.max_us) / 2 / 1e6


@dataclass(frozen=True)
class Produced:
    """Where the workload landed: partition -> number of records (offsets 0..n-1)."""

    topic: str
    counts: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def expected(self) -> set[tuple[int, int]]:
        return {(p, o) for p, n in self.counts.items() for o in range(n)}


def produce_workload(broker: LocalBroker, workload: Workload, prefix: str) -> Produced:
    """Create a fresh topic and fill it with the workload, one partition at a time (so each
    partition's offsets are exactly 0..n-1 and the expected set is known without reading
    the topic back)."""
    topic = broker.new_topic(prefix, partitions=workload.partitions)
    rng = random.Random(workload.seed)
    tail = b" " + b"x" * workload.padding if workload.padding else b""
    per_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {
        p: [] for p in range(workload.partitions)
    }
    for _ in range(workload.records):
        key = rng.randrange(workload.keys)
        value = b"%d" % rng.randint(workload.min_us, workload.max_us) + tail
        per_partition[key % workload.partitions].append((b"k%d" % key, value))
    counts = {}
    for partition, items in per_partition.items():
        counts[partition] = broker.produce(topic, items, partition=partition, timeout=120)
    return Produced(topic, counts)


# -- reading the reports back ------------------------------------------------------------------
class Report(NamedTuple):
    """One handler run, as the `report` handler wrote it to the output topic."""

    partition: int
    offset: int
    key: str | None
    instance: str
    pid: int
    started_ns: int


class OutputLog:
    """What was read of an output topic: each output record taken once, by its own
    (partition, offset), in whatever order the broker shows them. The local broker can
    show a later offset of a partition before an earlier one that two producers wrote at
    the same moment: a reader that only went forward would pass the earlier one for good
    (docs/architecture.md, "Reliability scenarios")."""

    def __init__(self) -> None:
        self.reports: list[Report] = []
        self.distinct: set[tuple[int, int]] = set()  # input records reported
        self._seen: set[tuple[int, int]] = set()  # output records taken

    def take(self, partition: int, offset: int, value: bytes | None) -> bool:
        """Take one output record; False when it was taken before."""
        if (partition, offset) in self._seen:
            return False
        self._seen.add((partition, offset))
        body = json.loads(value or b"{}")
        report = Report(body["p"], body["o"], body["k"], body["i"], body["pid"], body["t"])
        self.reports.append(report)
        self.distinct.add((report.partition, report.offset))
        return True

    def taken_per_partition(self) -> dict[int, int]:
        """How many output records were taken from each output partition."""
        return dict(Counter(partition for partition, _ in self._seen))


class OutputReader:
    """Reads an output topic from its beginning, a little more at each `read()`.

    Each output record is taken once (`OutputLog`), so reading the topic again from its
    start (`reopen()`) never counts a handler run twice.
    """

    def __init__(self, broker: LocalBroker, topic: str) -> None:
        self.topic = topic
        self.log = OutputLog()
        self.errors: list[str] = []  # errors the client reported while reading
        self._config = {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": new_group("reliability-reader"),  # required, never joined
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        self._consumer = Consumer(self._config)
        metadata = self._consumer.list_topics(topic, timeout=30)
        # From offset 0, not the broker's "earliest": the local broker answers that with the
        # batch stored first, which several producers at once can make a later one.
        self._start = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        self._consumer.assign(self._start)

    def read(self, quiet_for: float = 0.5, timeout: float = 60.0) -> int:
        """Read until nothing new came for `quiet_for` s (the local broker's high watermark
        lags the log end, so "no more records for a moment" is the only end it shows);
        return how many reports came in this call."""
        before = len(self.reports)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = self._consumer.consume(1000, 0.1)
            self.errors += [str(m.error()) for m in batch if m.error() is not None]
            good = [m for m in batch if m.error() is None]
            if not good:
                if time.monotonic() - quiet_since >= quiet_for:
                    break
                continue
            quiet_since = time.monotonic()
            for message in good:
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                self.log.take(partition, offset, message.value())
        return len(self.reports) - before

    @property
    def reports(self) -> list[Report]:
        return self.log.reports

    @property
    def distinct(self) -> set[tuple[int, int]]:
        return self.log.distinct

    def reopen(self) -> None:
        """Read the topic again from its start with a new client: an output shown late,
        behind later offsets of its partition, is taken then. (Once in a long churn run, a
        reading client also stopped receiving from the local broker, silently, while a new
        one read the rest at once.)"""
        self._consumer.close()
        self._consumer = Consumer(self._config)
        self._consumer.assign(self._start)

    def read_until(self, covered: int, timeout: float, what: str) -> None:
        """Read until `covered` distinct records were reported, then until quiet."""
        deadline = time.monotonic() + timeout
        while len(self.distinct) < covered:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}: "
                    f"{len(self.distinct):,} of {covered:,} records reported; output records "
                    f"read per partition: {self.log.taken_per_partition()}; client errors: "
                    f"{self.errors[-5:]}"
                )
            if not self.read(quiet_for=1.0, timeout=3.0):
                self.reopen()
        self.read()

    def close(self) -> None:
        self._consumer.close()


# -- checking ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tally:
    """Every record of the workload against every report of it."""

    expected: int
    reports: int
    missing: int
    duplicates: int  # reports beyond the first of each record
    unexpected: int  # reports of records the workload does not have
    duplicated_records: int  # records reported more than once

    def line(self) -> str:
        return (
            f"{self.expected:,} records, {self.reports:,} handler runs: missing {self.missing}, "
            f"duplicates {self.duplicates:,} ({self.duplicated_records:,} records), "
            f"unexpected {self.unexpected}"
        )


def tally(produced: Produced, reports: Iterable[Report]) -> Tally:
    counts = Counter((r.partition, r.offset) for r in reports)
    expected = produced.expected()
    seen = set(counts)
    return Tally(
        expected=len(expected),
        reports=sum(counts.values()),
        missing=len(expected - seen),
        duplicates=sum(n - 1 for pos, n in counts.items() if pos in expected),
        unexpected=len(seen - expected),
        duplicated_records=sum(1 for pos, n in counts.items() if pos in expected and n > 1),
    )


def rate(reports: Sequence[Report], window: float = 2.0) -> float:
    """Records per second over the last `window` seconds of these handler runs (or over all
    of them if they span less); 0 if there are fewer than two."""
    if len(reports) < 2:
        return 0.0
    times = sorted(r.started_ns for r in reports)
    span = min(window, (times[-1] - times[0]) / 1e9)
    if span <= 0:
        return 0.0
    recent = sum(1 for t in times if t >= times[-1] - span * 1e9)
    return recent / span


# -- parafka run ---------------------------------------------------------------------------------
def run_args(broker_address: str, handler: str, topic: str, group: str, *extra: str) -> list[str]:
    """`parafka run` arguments for a scenario (fast failover; `extra` last, so it wins)."""
    return ["run", handler, "-b", broker_address, "-g", group, "-t", topic, *FAST_FAILOVER,
            *extra]  # fmt: skip


def instance_env(instance: str, **extra: str) -> dict[str, str]:
    return cli_env(**{INSTANCE_ENV: instance, **extra})


def stop_run(proc: subprocess.Popen[bytes], logs: Path) -> int:
    """Stop `parafka run` gracefully (SIGTERM, unless it ended already) and return its exit
    code; an AssertionError with its stderr if it is still running after 60 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return wait_exit(proc, 60, logs)


def uncommitted(
    broker: LocalBroker,
    group: str,
    produced: Produced,
    partitions: int,
    alive: Callable[[], bool],
    timeout: float = 30.0,
) -> int:
    """Records of `produced` that `group` has not committed, once its commits caught up.
    Called when every record has an output: the offsets follow at the consumers' next
    commit (every second by default), or once a rebalance still under way settles (a
    commit during one fails, and the next round commits again). Polls every half second,
    at most `timeout` seconds and while `alive()`."""
    deadline = time.monotonic() + timeout
    while True:
        offsets = committed(broker, group, produced.topic, partitions)
        behind = sum(n - max(0, offsets[p]) for p, n in produced.counts.items())
        if behind == 0 or time.monotonic() > deadline or not alive():
            return behind
        time.sleep(0.5)


def committed_total(broker: LocalBroker, group: str, topic: str, partitions: int) -> int:
    """How many records `group` has committed on `topic` (each partition's offsets from 0)."""
    return sum(max(0, offset) for offset in committed(broker, group, topic, partitions).values())


def assigned_count(stderr: Path) -> int:
    """How many assignments the consumer(s) writing to `stderr` logged so far."""
    return rebalance_events(stderr).count("assigned")


# The engine's loggers are named by module (parafka.engine.control, ...): match any of them.
ENGINE_LOGGER = r"parafka(?:\.\w+)*"
_REBALANCE = re.compile(rf"{ENGINE_LOGGER}: (assigned|revoked|lost) ")


def rebalance_events(stderr: Path) -> list[str]:
    """ "assigned", "revoked" and "lost" in the order the consumer(s) logged them."""
    if not stderr.exists():
        return []
    return _REBALANCE.findall(stderr.read_text(errors="replace"))


def wait_settled(
    stderrs: Path | Sequence[Path], quiet_for: float, timeout: float, alive: Callable[[], bool]
) -> None:
    """Wait until every log's last rebalance line is an assignment and no log got one for
    `quiet_for` s.

    On the local broker, members leaving a group while it rebalances can leave it unable to
    assign anyone again, so the scenarios stop members only once the group has settled.
    """
    paths = [stderrs] if isinstance(stderrs, Path) else list(stderrs)
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        assert alive(), "a consumer ended while waiting for its group to settle"
        events = [rebalance_events(path) for path in paths]
        count = sum(len(e) for e in events)
        if count != seen:
            seen, since = count, time.monotonic()
        settled = all(e and e[-1] == "assigned" for e in events)
        if settled and time.monotonic() - since >= quiet_for:
            return
        time.sleep(0.1)
    raise AssertionError(f"the group did not settle within {timeout} s; see {paths}")


# -- memory ---------------------------------------------------------------------------------------
def rss_bytes(pid: int) -> int | None:
    """Resident memory of process `pid` (Linux /proc), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class RssSeries:
    """(seconds since the first sample, RSS bytes) samples of one process."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def at(self, fraction: float) -> int:
        """The sample at `fraction` (0..1) of the sampled time."""
        if not self.samples:
            return 0
        end = self.samples[-1][0] * fraction
        return next(rss for t, rss in self.samples if t >= end)

    def window_max(self, start: float, end: float) -> int:
        """The largest sample taken between `start` and `end` seconds."""
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def sample_rss(
    pid: int,
    seconds: float | None,
    every: float = 0.2,
    on_tick: Callable[[float, int], None] | None = None,
    tick_every: float = 10.0,
) -> RssSeries:
    """Sample the RSS of `pid` every `every` s until it exits or `seconds` have passed;
    `on_tick(elapsed, rss)` is called every `tick_every` s (progress lines)."""
    series = RssSeries()
    started = time.monotonic()
    next_tick = tick_every
    while True:
        elapsed = time.monotonic() - started
        rss = rss_bytes(pid)
        if rss is None or (seconds is not None and elapsed >= seconds):
            return series
        series.samples.append((elapsed, rss))
        if on_tick is not None and elapsed >= next_tick:
            next_tick += tick_every
            on_tick(elapsed, rss)
        time.sleep(every)


MB = 1024 * 1024


def mb(size: float) -> str:
    return f"{size / MB:.1f} MB"
