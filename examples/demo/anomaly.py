"""Scene: the anomaly detector (examples/anomaly/) under rising offered load.

parafka's process executor (2 workers, batches of 500) scores web requests while a load
generator in its own process offers 1,000, then 5,000, then 20,000 requests/s, back to
back, a few seconds each (examples/anomaly/latency.py, shared with benchmarks/anomaly.py).
While it runs, the consumer's true lag (log end - committed offset) is sampled ten times a
second; afterwards every verdict is read back and matched to its request: latency = the
verdict's timestamp (set when produced) - the request's (its send time), per phase.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from examples.demo.kafka import Stage
from examples.demo.needs import example
from examples.demo.results import Played, Row, fmt_rate
from examples.demo.view import Lane, Panel
from parafka import ParallelConsumer

RATES = (1_000, 5_000, 20_000)
WARM_UP = 1_000  # requests scored before the clock starts: every worker has its model
BATCH_SIZE = 500
BATCH_WAIT = 0.01
COMMIT_INTERVAL = 0.2  # the lag includes what is done and not yet committed: commit often


@dataclass(frozen=True)
class Size:
    seconds: float  # per offered rate
    partitions: int
    workers: int
    timeout: float


FULL = Size(seconds=4.0, partitions=4, workers=2, timeout=120)
QUICK = Size(seconds=0.3, partitions=4, workers=2, timeout=60)


@dataclass
class Peak:
    """The highest lag seen during one phase."""

    lag: int = 0
    samples: int = 0


def play(stage: Stage, panel: Panel) -> Played:
    service = example("anomaly.service")
    latency = example("anomaly.latency")
    common = example("common")
    size = QUICK if stage.quick else FULL
    plan = [(rate, int(rate * size.seconds)) for rate in RATES]
    total = sum(count for _, count in plan)

    model = service.model_path()
    panel.note(f"model {model}" + ("" if model.exists() else " (training it: first run only)"))
    service.load_model(model)
    requests = stage.topic("requests", size.partitions)
    verdicts = stage.topic("verdicts", size.partitions)
    load = latency.OfferedLoad(
        multiprocessing.get_context("spawn"),
        stage.bootstrap_servers,
        requests,
        plan,
        config=stage.producer_settings(),
    )
    load.start()  # generates its requests while the consumer joins its group
    consumer = stage.parallel(
        service.HANDLER,
        requests,
        "anomaly",
        executor="process",
        workers=size.workers,
        ordering="unordered",
        batch_size=BATCH_SIZE,
        batch_wait=BATCH_WAIT,
        output_topic=verdicts,
        commit_interval=COMMIT_INTERVAL,
    )
    lanes = _lanes(panel, consumer, plan)
    peaks = [Peak() for _ in plan]
    try:
        consumer.start()
        _wait(lambda: bool(consumer.stats().partitions), consumer, 60, "no partitions assigned")
        panel.note(f"warming up: {WARM_UP:,} requests, so every worker has loaded the model")
        service.LoadGenerator(
            stage.bootstrap_servers, requests, WARM_UP, None, seed=100,
            config=stage.producer_settings(),
        ).run()  # fmt: skip
        _wait(lambda: consumer.stats().processed >= WARM_UP, consumer, 60, "warm-up not scored")
        _wait(lambda: consumer.stats().lag == 0, consumer, 10, "warm-up not committed")
        if not load.ready(60):
            raise TimeoutError("the load generator did not get ready within 60 s")
        load.go()
        _watch(load, consumer, lanes, peaks, WARM_UP + total, size.timeout)
        sent = load.results(timeout=30)
    finally:
        load.stop()
        consumer.stop()
        consumer.join(60)
    phases = [latency.Phase(rate) for rate, _ in plan]
    for phase, (sent_at, offered) in zip(phases, sent, strict=True):
        phase.sent_at, phase.offered = sent_at, offered
    messages = common.read_topic(
        stage.bootstrap_servers, verdicts, minimum=WARM_UP + total, timeout=30, settle=0.5,
        config=stage.consumer_settings(),
    )  # fmt: skip
    latency.match(phases, [(json.loads(m.value())["id"], m.timestamp()[1], None) for m in messages])
    return _played(latency, phases, peaks, lanes)


def _lanes(panel: Panel, consumer: ParallelConsumer, plan: list[tuple[int, int]]) -> list[Lane]:
    """A lane per offered rate, filled by the records scored beyond the earlier phases'."""

    def beyond(before: int) -> Callable[[], int]:
        return lambda: consumer.stats().processed - before

    lanes = []
    before = WARM_UP
    for rate, count in plan:
        lanes.append(panel.lane(f"{rate:,} requests/s offered", count, beyond(before)))
        before += count
    for lane in lanes:
        lane.status = "waiting"
    return lanes


def _wait(condition: Any, consumer: ParallelConsumer, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not consumer.is_running:
            consumer.join(10)  # re-raises why it stopped
            raise RuntimeError(f"the consumer stopped: {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        time.sleep(0.05)


def _watch(
    load: Any,
    consumer: ParallelConsumer,
    lanes: list[Lane],
    peaks: list[Peak],
    expected: int,
    timeout: float,
) -> None:
    """Sample the lag (10 per second) into the phase being offered, until every request
    was offered and scored."""
    deadline = time.monotonic() + timeout
    while True:
        stats, phase = consumer.stats(), load.phase
        if 0 <= phase < len(peaks):
            peak = peaks[phase]
            peak.lag, peak.samples = max(peak.lag, stats.lag), peak.samples + 1
            lanes[phase].status = f"lag {stats.lag:,} records (peak {peak.lag:,})"
            for earlier in range(phase):
                if not lanes[earlier].finished:
                    lanes[earlier].finish(f"peak lag {peaks[earlier].lag:,}")
        if phase >= len(peaks) and stats.processed >= expected:
            break
        if not consumer.is_running:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stats.processed - WARM_UP:,} of {expected - WARM_UP:,} scored")
        time.sleep(0.1)
    for lane, peak in zip(lanes, peaks, strict=True):
        if not lane.finished:
            lane.finish(f"peak lag {peak.lag:,}")


def _played(latency: Any, phases: list[Any], peaks: list[Peak], lanes: list[Lane]) -> Played:
    rows = []
    p99s = []
    for phase, peak, lane in zip(phases, peaks, lanes, strict=True):
        p50, _, p99, _ = latency.percentiles(phase.by_ts)
        p99s.append(p99)
        sent = len(phase.sent_at)
        check = f"{phase.verdicts:,} of {sent:,} requests have a verdict"
        if phase.duplicates:
            check += f", {phase.duplicates} twice"
        rows.append(
            Row(
                f"{phase.rate:,}/s offered ({fmt_rate(phase.offered)} sent)",
                f"p99 {p99:,.0f} ms",
                f"p50 {p50:,.0f} ms; peak lag {peak.lag:,} records "
                f"({_behind(peak, phase.rate)} of input); {fmt_rate(phase.served)} scored",
                check,
                ok=phase.missing == 0 and sent > 0,
                rate=phase.served,
            )
        )
        lane.status = f"p99 {p99:,.0f} ms, peak lag {peak.lag:,}"
    p99_text = " / ".join(f"{p:,.0f}" for p in p99s)
    lag_text = " / ".join(f"{p.lag:,}" for p in peaks)
    behind = " / ".join(_behind(peak, rate) for peak, rate in zip(peaks, RATES, strict=True))
    rates = " / ".join(f"{r // 1000}k" for r in RATES)
    return Played(
        rows,
        f"at {rates} requests/s offered: p99 {p99_text} ms; peak lag {lag_text} records "
        f"= {behind} of input",
    )


def _behind(peak: Peak, rate: int) -> str:
    """The lag as time: how much of the offered input it holds. It grows in records with
    the rate even when the service keeps up (batches in flight, the commit interval)."""
    return f"{peak.lag / rate:.2f} s"
