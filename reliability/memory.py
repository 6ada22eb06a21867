"""Memory under a backlog: many records waiting on the broker, a 5 ms handler, concurrency 50;
the consumer's RSS is sampled the whole time and must stay under 300 MB.

    .venv/bin/python reliability/memory.py                     # 1,000,000 records, to the end
    .venv/bin/python reliability/memory.py --records 200000 --seconds 20

parafka holds at most `max_buffered` records (default max(1000, 10 x concurrency)); what
librdkafka prefetches is bounded by its own settings (queued.min.messages,
queued.max.messages.kbytes), so RSS levels off however long the backlog is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parafka.testing import LocalBroker
from reliability import common
from reliability.common import MB, mb
from tests.integration.test_cli import started_cli

LIMIT = 300 * MB


@dataclass(frozen=True)
class MemoryReport:
    records: int
    processed: int  # committed when the consumer stopped
    seconds: float  # sampled
    series: common.RssSeries
    extra: tuple[str, ...]

    def lines(self) -> list[str]:
        s = self.series
        settings = " ".join(self.extra) or "default settings"
        return [
            f"memory: {self.records:,} records waiting, 5 ms handler, concurrency 50 ({settings})",
            f"processed {self.processed:,} records in {self.seconds:.0f} s "
            f"({self.processed / max(self.seconds, 1e-9):,.0f} records/s); "
            f"{len(s.samples):,} RSS samples",
            f"RSS peak {mb(s.peak)} (limit {mb(LIMIT)}); at 10% {mb(s.at(0.1))}, "
            f"50% {mb(s.at(0.5))}, 90% {mb(s.at(0.9))}, end {mb(s.at(1.0))}",
        ]


def memory_run(
    broker: LocalBroker,
    records: int,
    logs: Path,
    *,
    seconds: float | None = None,
    concurrency: int = 50,
    padding: int = 100,
    extra: Sequence[str] = (),
    echo: common.Echo = common.quiet,
) -> MemoryReport:
    """Fill a topic with `records` 5 ms records, then run parafka on it to the end (exits
    with --until-idle) or for `seconds` (then SIGTERM), sampling its RSS throughout."""
    workload = common.Workload(records, min_us=5000, max_us=5000, padding=padding)
    produced = common.produce_workload(broker, workload, "memory")
    echo(f"{produced.total:,} records waiting in {produced.topic}")
    group = common.new_group("memory")
    args = common.run_args(broker.bootstrap_servers, common.SLEEP, produced.topic, group,
                           "-c", str(concurrency), *extra)  # fmt: skip
    if seconds is None:
        args += ["--until-idle", "5"]

    def progress(elapsed: float, rss: int) -> None:
        done = common.committed_total(broker, group, produced.topic, workload.partitions)
        echo(f"  {elapsed:5.0f} s  RSS {mb(rss):>9}  committed {done:,}")

    with started_cli(args, common.instance_env("memory"), logs) as proc:
        series = common.sample_rss(proc.pid, seconds, on_tick=progress)
        code = common.stop_run(proc, logs)
    assert code == 0, (logs / "stderr").read_text()
    processed = common.committed_total(broker, group, produced.topic, workload.partitions)
    elapsed = series.samples[-1][0] if series.samples else 0.0
    return MemoryReport(produced.total, processed, elapsed, series, tuple(extra))


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.scenario_parser(__doc__, "/tmp/parafka-memory")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop early (default: all)")
    parser.add_argument("--padding", type=int, default=100, help="value bytes beyond the time")
    parser.add_argument("-X", dest="kafka", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    extra = [item for setting in args.kafka for item in ("-X", setting)]
    started = time.monotonic()
    with LocalBroker() as broker:
        report = memory_run(
            broker,
            args.records,
            args.logs,
            seconds=args.seconds,
            padding=args.padding,
            extra=extra,
            echo=common.say,
        )
    lines = [*report.lines(), f"(whole run {time.monotonic() - started:.0f} s)"]
    return common.verdict(lines, report.series.peak < LIMIT)


if __name__ == "__main__":
    sys.exit(main())
