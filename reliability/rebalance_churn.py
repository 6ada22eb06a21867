"""Rebalance churn: instances of one group join and leave every few seconds while records
flow; no record may be lost, per-key order must hold within every ownership period, and no
consumer may be left stuck.

    .venv/bin/python reliability/rebalance_churn.py          # 100,000 records, 3 instances
    .venv/bin/python reliability/rebalance_churn.py --records 20000 --events 8

Three `parafka run` instances start; then every 2-5 s one leaves (SIGTERM: a graceful leave)
or a new one joins, keeping between one and three running, until 90% of the records are
processed (or `--events` events). Each handler run reports
(instance, partition, offset, key, start time) to an output topic. Ownership periods come
from each instance's own log ("assigned ..." / "revoked ..." / "lost ..." lines). Checks:

- every record is in the output topic (duplicates are counted: on a broker that drops commit
  metadata, a rebalance repeats the records finished above the first dropped one);
- within an ownership period of a partition, each key's offsets increase with start time,
  and no instance processes a partition it does not own;
- after the churn every record is processed and committed, and every instance still running
  stops with exit 0 on SIGTERM.
"""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parafka.testing import LocalBroker
from reliability import common
from tests.integration.helpers import wait_until
from tests.integration.test_cli import started_cli

_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+\s+"
    rf"{common.ENGINE_LOGGER}: (assigned|revoked|lost) (.*)$"
)
_PARTITION = re.compile(r"(\S+?)\[(\d+)\]")


@dataclass(frozen=True)
class Period:
    """Instance `instance` owned `partition` from `start` to `end` (epoch seconds)."""

    instance: str
    partition: int
    start: float
    end: float


def ownership_periods(instance: str, log_text: str, topic: str) -> list[Period]:
    """Periods of ownership read from one instance's log (the CLI's log format)."""
    opened: dict[int, float] = {}
    periods: list[Period] = []
    for line in log_text.splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        stamp, what, names = match.groups()
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        partitions = [int(p) for t, p in _PARTITION.findall(names) if t == topic]
        for partition in partitions:
            if what == "assigned":
                opened[partition] = when
            elif partition in opened:
                periods.append(Period(instance, partition, opened.pop(partition), when))
    periods += [Period(instance, p, start, float("inf")) for p, start in opened.items()]
    return periods


@dataclass
class OrderCheck:
    periods: int = 0
    runs_checked: int = 0
    sequences: int = 0  # (period, key) sequences with two or more runs
    outside: list[common.Report] = field(default_factory=list)  # runs outside any ownership period
    violations: list[str] = field(default_factory=list)


def check_order(reports: Sequence[common.Report], periods: Sequence[Period]) -> OrderCheck:
    """Per ownership period and key, offsets must increase with the handler's start time."""
    result = OrderCheck(periods=len(periods))
    by_owner: dict[tuple[str, int], list[Period]] = defaultdict(list)
    for period in periods:
        by_owner[(period.instance, period.partition)].append(period)
    sequences: dict[tuple[Period, str | None], list[common.Report]] = defaultdict(list)
    for report in reports:
        started = report.started_ns / 1e9
        owned = [
            p for p in by_owner[(report.instance, report.partition)] if p.start <= started <= p.end
        ]
        if not owned:
            result.outside.append(report)
            continue
        sequences[(owned[-1], report.key)].append(report)
        result.runs_checked += 1
    for (period, key), runs in sequences.items():
        if len(runs) < 2:
            continue
        result.sequences += 1
        runs.sort(key=lambda r: r.started_ns)
        highest = runs[0].offset
        for run in runs[1:]:
            if run.offset <= highest:
                result.violations.append(
                    f"{period.instance} partition {period.partition} key {key}: offset "
                    f"{run.offset} ran after {highest}"
                )
            highest = max(highest, run.offset)
    return result


@dataclass
class ChurnReport:
    produced: common.Produced
    events: list[str] = field(default_factory=list)
    instances: int = 0
    exit_codes: dict[str, int] = field(default_factory=dict)
    tally: common.Tally | None = None
    order: OrderCheck | None = None
    after_churn: int = 0  # records first processed after the last churn event
    uncommitted: int = 0  # records not committed at the end
    seconds: float = 0.0
    settle_seconds: float = 0.0  # from the last event to every record processed

    def lines(self) -> list[str]:
        assert self.tally is not None and self.order is not None
        bad_exits = {n: c for n, c in self.exit_codes.items() if c != 0}
        order = self.order
        return [
            f"rebalance churn: {len(self.events)} events ({self.count('join')} joins, "
            f"{self.count('leave')} leaves), {self.instances} instances in all, "
            f"{self.seconds:.0f} s",
            self.tally.line(),
            f"order: {order.periods} ownership periods, {order.sequences:,} key sequences, "
            f"{order.runs_checked:,} runs checked; {len(order.violations)} out of order, "
            f"{len(order.outside)} outside an ownership period",
            f"after the last event: {self.after_churn:,} records still to process, all done in "
            f"{self.settle_seconds:.1f} s; uncommitted at the end: {self.uncommitted}; "
            f"exit codes not 0: {bad_exits or 'none'}",
        ]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.startswith(kind))

    @property
    def ok(self) -> bool:
        assert self.tally is not None and self.order is not None
        return (
            self.tally.missing == 0
            and self.tally.unexpected == 0
            and not self.order.violations
            and not self.order.outside
            and self.uncommitted == 0
            and all(code == 0 for code in self.exit_codes.values())
        )


def churn(
    broker: LocalBroker,
    workload: common.Workload,
    logs: Path,
    *,
    instances: int = 3,
    events: int | None = None,
    churn_until: float = 0.9,
    interval: tuple[float, float] = (2.0, 5.0),
    concurrency: int = 16,
    settle_timeout: float = 300.0,
    seed: int = 1,
    echo: common.Echo = common.quiet,
) -> ChurnReport:
    started = time.monotonic()
    rng = random.Random(seed)
    produced = common.produce_workload(broker, workload, "churn")
    out = broker.new_topic("churn-out", partitions=workload.partitions)
    group = common.new_group("churn")
    base = common.run_args(broker.bootstrap_servers, common.REPORT, produced.topic, group,
                           "-o", out, "--ordering", "key", "-c", str(concurrency))  # fmt: skip
    report = ChurnReport(produced)
    echo(f"{produced.total:,} records in {produced.topic}; {instances} instances")
    reader = common.OutputReader(broker, out)
    names = (f"i{n}" for n in itertools.count(1))
    live: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with ExitStack() as stack:

            def join() -> str:
                name = next(names)
                live[name] = stack.enter_context(
                    started_cli(base, common.instance_env(name), logs / name)
                )
                report.instances += 1
                return name

            def leave(name: str) -> None:
                # A consumer leaves once it took part: SIGTERM before the process set its
                # handlers (interpreter start-up, seconds on a loaded machine) kills it
                # (exit -15), which is not the graceful leave this scenario is about.
                stderr = logs / name / "stderr"
                wait_until(lambda: common.assigned_count(stderr) > 0, 60, f"{name} assigned")
                proc = live.pop(name)
                report.exit_codes[name] = common.stop_run(proc, logs / name)

            for _ in range(instances):
                join()
            wait_until(
                lambda: any(common.assigned_count(logs / n / "stderr") for n in live),
                60,
                "a first assignment",
            )
            for number in itertools.count(1):
                if events is not None and number > events:
                    break
                if events is None and len(reader.distinct) >= churn_until * produced.total:
                    break
                time.sleep(rng.uniform(*interval))  # the churn's own rhythm
                for name, proc in live.items():
                    assert proc.poll() is None, (logs / name / "stderr").read_text()
                if len(live) >= instances or (len(live) > 1 and rng.random() < 0.5):
                    name = rng.choice(sorted(live))
                    leave(name)
                    event = f"leave {name}"
                else:
                    event = f"join {join()}"
                report.events.append(event)
                reader.read(quiet_for=0.0, timeout=0.5)
                echo(
                    f"  event {number}: {event} ({len(live)} running; "
                    f"{len(reader.distinct):,}/{produced.total:,} done)"
                )
            churn_ended = time.monotonic()
            reader.read(quiet_for=0.0, timeout=0.5)
            report.after_churn = produced.total - len(reader.distinct)
            reader.read_until(produced.total, settle_timeout, "every record after the churn")
            report.settle_seconds = time.monotonic() - churn_ended
            report.uncommitted = common.uncommitted(
                broker,
                group,
                produced,
                workload.partitions,
                lambda: all(p.poll() is None for p in live.values()),
            )
            # One at a time, each after the group settled (see common.wait_settled).
            for name in sorted(live):
                if len(live) > 1:
                    stderrs = [logs / n / "stderr" for n in live]
                    common.wait_settled(
                        stderrs, 2.0, 90, lambda: all(p.poll() is None for p in live.values())
                    )
                leave(name)
    finally:
        reader.close()
    report.tally = common.tally(produced, reader.reports)
    periods = [
        period
        for name in report.exit_codes
        for period in ownership_periods(
            name, (logs / name / "stderr").read_text(errors="replace"), produced.topic
        )
    ]
    report.order = check_order(reader.reports, periods)
    report.seconds = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.scenario_parser(__doc__, "/tmp/parafka-churn")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=None, help="default: until 90%% done")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with LocalBroker() as broker:
        report = churn(
            broker,
            common.Workload(args.records, seed=args.seed),
            args.logs,
            events=args.events,
            concurrency=args.concurrency,
            seed=args.seed,
            echo=common.say,
        )
    violations = report.order.violations[:10] if report.order else []
    return common.verdict(
        [*report.lines(), *(f"  out of order: {v}" for v in violations)], report.ok
    )


if __name__ == "__main__":
    sys.exit(main())
