"""Memory under a backlog: many records waiting on the broker, a 5 ms handler, concurrency 50;
the consumer's RSS is sampled the whole time and must stay under 300 MB.

    .venv/bin/python reliability/memory.py                     # 1,000,000 records, to the end
    .venv/bin/python reliability/memory.py --records 200000 --seconds 20

parafka holds at most `max_buffered` records (default max(1000, 10 x concurrency)); what
librdkafka prefetches is bounded by its own settings (queued.min.messages,
queued.max.messages.kbytes), so RSS levels off however long the backlog is.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parafka.testing import LocalBroker
from reliability.common import (
    MB,
    SLEEP,
    Echo,
    RssSeries,
    Workload,
    instance_env,
    mb,
    new_group,
    produce_workload,
    quiet,
    run_args,
    sample_rss,
)
from tests.integration.helpers import committed
from tests.integration.test_cli import started_cli, wait_exit

LIMIT = 300 * MB


@dataclass(frozen=True)
class MemoryReport:
    records: int
    processed: int  # committed when the consumer stopped
    seconds: float  # sampled
    series: RssSeries
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
    echo: Echo = quiet,
) -> MemoryReport:
    """Fill a topic with `records` 5 ms records, then run parafka on it to the end (exits
    with --until-idle) or for `seconds` (then SIGTERM), sampling its RSS throughout."""
    workload = Workload(records, min_us=5000, max_us=5000, padding=padding)
    produced = produce_workload(broker, workload, "memory")
    echo(f"{produced.total:,} records waiting in {produced.topic}")
    group = new_group("memory")
    args = run_args(broker.bootstrap_servers, SLEEP, produced.topic, group,
                    "-c", str(concurrency), *extra)  # fmt: skip
    if seconds is None:
        args += ["--until-idle", "5"]

    def progress(elapsed: float, rss: int) -> None:
        done = sum(
            max(0, o)
            for o in committed(broker, group, produced.topic, workload.partitions).values()
        )
        echo(f"  {elapsed:5.0f} s  RSS {mb(rss):>9}  committed {done:,}")

    with started_cli(args, instance_env("memory"), logs) as proc:
        series = sample_rss(proc.pid, seconds, on_tick=progress)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, 60, logs)
    assert code == 0, (logs / "stderr").read_text()
    offsets = committed(broker, group, produced.topic, workload.partitions)
    processed = sum(max(0, offset) for offset in offsets.values())
    elapsed = series.samples[-1][0] if series.samples else 0.0
    return MemoryReport(produced.total, processed, elapsed, series, tuple(extra))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop early (default: all)")
    parser.add_argument("--padding", type=int, default=100, help="value bytes beyond the time")
    parser.add_argument("-X", dest="kafka", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/parafka-memory"))
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
            echo=lambda line: print(line, flush=True),
        )
    for line in report.lines():
        print(line)
    print(f"(whole run {time.monotonic() - started:.0f} s)")
    ok = report.series.peak < LIMIT
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
