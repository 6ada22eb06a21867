"""Soak: records produced at a steady rate for 10 minutes while parafka keeps up; the
consumer's RSS is sampled every second and its growth reported (a leak shows as a slope).

    .venv/bin/python reliability/soak.py                        # 10 min at 2,000 records/s
    .venv/bin/python reliability/soak.py --minutes 2 --rate 1000

Growth is measured from the end of the first minute (start-up and the first fills of the
client's buffers are not growth) to the end: first-minute RSS, last RSS, and the slope of
a least-squares line through the samples after the first minute, in MB per minute.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer

from parafka.testing import LocalBroker
from reliability import common
from reliability.common import MB, mb
from tests.integration.test_cli import started_cli

PARTITIONS = 8
WARM_UP = 60.0  # seconds not counted as growth


@dataclass(frozen=True)
class SoakReport:
    seconds: float
    produced: int
    processed: int
    series: common.RssSeries

    def after_warm_up(self) -> list[tuple[float, int]]:
        return [(t, rss) for t, rss in self.series.samples if t >= min(WARM_UP, self.seconds / 6)]

    def slope_mb_per_minute(self) -> float:
        """Least-squares slope of RSS over time after the warm-up."""
        points = self.after_warm_up()
        if len(points) < 2:
            return 0.0
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_r = sum(r for _, r in points) / n
        var = sum((t - mean_t) ** 2 for t, _ in points)
        cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
        return cov / var * 60 / MB if var else 0.0

    def lines(self) -> list[str]:
        points = self.after_warm_up()
        first, last = points[0][1], points[-1][1]
        return [
            f"soak: {self.seconds / 60:.1f} min, {self.produced:,} records produced, "
            f"{self.processed:,} processed (lag at the end {self.produced - self.processed:,})",
            f"RSS after warm-up {mb(first)}, at the end {mb(last)}, peak {mb(self.series.peak)}; "
            f"growth {mb(last - first)} ({self.slope_mb_per_minute():+.2f} MB/min fitted)",
        ]


class SteadyProducer:
    """Produces 5 ms records at `rate` per second from a thread until stopped."""

    def __init__(self, bootstrap_servers: str, topic: str, rate: int, padding: int) -> None:
        self.topic, self.rate = topic, rate
        self.value = b"5000 " + b"x" * padding
        self.sent = 0
        self._producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._producer.flush(30)
        return self.sent

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                key = b"k%d" % (self.sent % 1000)
                try:
                    self._producer.produce(self.topic, self.value, key)
                except BufferError:
                    break
                self.sent += 1
            self._producer.poll(0)
            self._stop.wait(0.01)


def soak(
    broker: LocalBroker,
    minutes: float,
    rate: int,
    logs: Path,
    *,
    concurrency: int = 50,
    padding: int = 100,
    echo: common.Echo = common.quiet,
) -> SoakReport:
    topic = broker.new_topic("soak", partitions=PARTITIONS)
    group = common.new_group("soak")
    args = common.run_args(
        broker.bootstrap_servers, common.SLEEP, topic, group, "-c", str(concurrency)
    )
    producer = SteadyProducer(broker.bootstrap_servers, topic, rate, padding)

    def progress(elapsed: float, rss: int) -> None:
        done = common.committed_total(broker, group, topic, PARTITIONS)
        echo(
            f"  {elapsed / 60:5.1f} min  RSS {mb(rss):>9}  produced {producer.sent:,}  "
            f"committed {done:,}"
        )

    with started_cli(args, common.instance_env("soak"), logs) as proc:
        producer.start()
        try:
            series = common.sample_rss(
                proc.pid, minutes * 60, every=1.0, on_tick=progress, tick_every=60.0
            )
        finally:
            produced = producer.stop()
        code = common.stop_run(proc, logs)
    assert code == 0, (logs / "stderr").read_text()
    processed = common.committed_total(broker, group, topic, PARTITIONS)
    return SoakReport(series.samples[-1][0], produced, processed, series)


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.scenario_parser(__doc__, "/tmp/parafka-soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=2000, help="records per second")
    args = parser.parse_args(argv)
    with LocalBroker() as broker:
        report = soak(broker, args.minutes, args.rate, args.logs, echo=common.say)
    return common.verdict(report.lines(), None)


if __name__ == "__main__":
    sys.exit(main())
