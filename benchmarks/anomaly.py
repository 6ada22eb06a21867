"""Anomaly scoring (examples/anomaly): throughput and end-to-end latency, beside baselines.

Targets (the issue): >= 20,000 records/s on 2 cores; p99 end-to-end latency (record
timestamp -> verdict acknowledged) <= 100 ms at 1,000 records/s offered.

Throughput: N request events (default 200,000) produced up front to a 4-partition topic,
keyed by client IP. Each run reads them in a fresh group, scores them with the same batch
handler, `examples.anomaly.service:score` (decode, features, one model call per batch), and
produces one verdict per event. Runs: the plain loop (consume(1000) -> score() -> produce ->
flush -> commit, one process); parafka's process executor (batch_size 500, workers 1 and 2,
unordered and key ordering); parafka's thread executor (batch_size 500, C=1 and 2).
records/s counts from the first records done (verdicts acknowledged) to the last: the plain
loop notes its own batch ends, parafka's from its stats snapshots (read every 10 ms, timed by
the time each was taken: common.Progress).

Latency: a load generator offers 1,000, 5,000 and 20,000 requests/s (open loop, 10 s each;
each record's Kafka timestamp is its send time, set explicitly) to a service consuming with
batch_size 500 and batch_wait 0.01 (the plain loop: consume(1000, 0.01)). A reader takes the
verdicts off the output topic. Latency per verdict is measured two ways:
- "ts": the verdict's own Kafka timestamp (CreateTime, set by the client when the service
  produces it) minus the request's. A lower bound: the acknowledgement follows within the
  producer's linger (5 ms) plus a round trip.
- "read": the wall clock when the reader received the verdict minus the request's
  timestamp. An upper bound: it adds the reader's own fetch delay.
Each setup runs with the client's default fetch.wait.max.ms (500) and with 10 ms, for the
service and the reader: the local broker holds a fetch for fetch.wait.max.ms even when data
arrives meanwhile, so the default adds up to half a second to every hop.

The load generator and the reader run in their own processes, so their Python work does not
compete for the GIL with the service's control thread in this one (a real service does not
share its interpreter with its clients).

Usage: python benchmarks/anomaly.py [--quick] [--records N] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Progress, console, fmt_rate, fmt_ratio, fresh_group, note, produce, table
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from parafka import ParallelConsumer, Record, Stats
from parafka.testing import LocalBroker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.anomaly.generator import encode, generate
from examples.anomaly.latency import Phase, match, offer_in_child, percentiles
from examples.anomaly.service import HANDLER, MODEL_ENV, load_model, score
from examples.anomaly.train import train

PARTITIONS = 4
BATCH_SIZE = 500
BATCH_WAIT = 0.01
RATES = (1_000, 5_000, 20_000)
TARGET_RATE = 20_000  # records/s on 2 cores
TARGET_P99_MS = 100.0  # at 1,000 records/s offered
LOW_FETCH_WAIT = 10  # ms
WARM_UP = 2_000  # requests sent before the timed phases: every worker has loaded the model


# -- the plain loop (the baseline) ---------------------------------------------------------
def _verdict_bytes(value: Any) -> bytes:
    """What parafka sends for a dict output: compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


class PlainLoop:
    """consume(1000, wait) -> score() on the batch -> produce -> flush -> commit, in one
    thread, until stopped. Notes when its first and last batch were done."""

    def __init__(self, config: dict[str, Any], topic: str, out: str, wait: float) -> None:
        self._consumer = Consumer(
            {
                **config,
                "group.id": fresh_group("bench-anomaly-plain"),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._producer = Producer(
            {"bootstrap.servers": config["bootstrap.servers"], "linger.ms": 5}
        )
        self._topic, self._out, self._wait = topic, out, wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plain-loop", daemon=True)
        self.processed = 0
        self.assigned = False
        self.first: tuple[float, int] | None = None  # (time, records done) at the first batch
        self.last = 0.0
        self.error: BaseException | None = None

    def start(self) -> None:
        load_model(os.environ[MODEL_ENV])  # loaded before the clock starts, as in a service
        self._consumer.subscribe([self._topic])
        self._thread.start()

    def _run(self) -> None:
        consumer, producer, out = self._consumer, self._producer, self._out
        try:
            while not self._stop.is_set():
                messages = [m for m in consumer.consume(1000, self._wait) if m.error() is None]
                if not self.assigned:
                    self.assigned = bool(consumer.assignment())
                if not messages:
                    continue
                records = [
                    Record(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                    for m in messages
                ]
                for verdict in score(records):
                    producer.produce(out, _verdict_bytes(verdict.value), verdict.key)
                producer.flush()
                consumer.commit(asynchronous=False)
                self.processed += len(messages)
                now = time.perf_counter()
                if self.first is None:
                    self.first = (now, self.processed)
                self.last = now
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            consumer.close()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise RuntimeError(f"the plain loop failed: {self.error!r}") from self.error

    def rate(self) -> float:
        if self.first is None or self.last <= self.first[0]:
            return float("nan")
        return (self.processed - self.first[1]) / (self.last - self.first[0])


# -- parafka ----------------------------------------------------------------------------------
class ParafkaService:
    """A ParallelConsumer scoring requests, with the same small interface as PlainLoop."""

    def __init__(self, config: dict[str, Any], topic: str, out: str, **kw: Any) -> None:
        handler = HANDLER if kw.get("executor") == "process" else score
        self._consumer = ParallelConsumer(
            handler,
            bootstrap_servers=str(config["bootstrap.servers"]),
            group_id=fresh_group("bench-anomaly"),
            topics=topic,
            output_topic=out,
            kafka_config=config,
            batch_size=BATCH_SIZE,
            **kw,
        )

    def start(self) -> None:
        load_model(os.environ[MODEL_ENV])  # for the thread executor (workers load their own)
        self._consumer.start()

    @property
    def processed(self) -> int:
        return self.stats().processed

    def stats(self) -> Stats:
        return self._consumer.stats()

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.stats().partitions)

    def is_running(self) -> bool:
        return self._consumer.is_running

    def stop(self) -> None:
        self._consumer.stop()
        if self._consumer.join(60) is None:
            raise RuntimeError("parafka did not stop within 60 s")


Service = PlainLoop | ParafkaService


def parafka_rate(service: ParafkaService, count: int, timeout: float = 600.0) -> float:
    """records/s between two of the consumer's stats snapshots, by their own clock (see
    common.Progress; read every 10 ms)."""
    service.start()
    progress = Progress(count)
    try:
        progress.follow(service.stats, service.is_running, timeout)
    finally:
        service.stop()
    if not progress.finished:
        raise RuntimeError(f"parafka did not process {count} records")
    return progress.rate


def plain_rate(loop: PlainLoop, count: int, timeout: float = 600.0) -> float:
    loop.start()
    deadline = time.monotonic() + timeout
    try:
        while loop.processed < count and loop.is_running():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the plain loop did {loop.processed} of {count} records")
            time.sleep(0.01)
    finally:
        loop.stop()
    return loop.rate()


# -- throughput -------------------------------------------------------------------------------
def request_items(count: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) for `count` generated requests, keyed by client IP."""
    traffic = generate(count, seed=seed)
    items = []
    for event in traffic.events:
        key = event["ip"].encode()
        items.append((zlib.crc32(key) % PARTITIONS, key, encode(event)))
    return items


def throughput(broker: LocalBroker, config: dict[str, Any], count: int) -> list[tuple[str, float]]:
    """records/s of each configuration on the same `count` pre-produced requests."""
    topic = broker.new_topic("requests", PARTITIONS)
    note(f"producing {count:,} request events")
    produce(broker.bootstrap_servers, topic, request_items(count, seed=3))

    def out() -> str:
        return broker.new_topic("verdicts", PARTITIONS)

    runs: list[tuple[str, Callable[[], float]]] = [
        ("plain loop (1 process)", lambda: plain_rate(PlainLoop(config, topic, out(), 0.2), count))
    ]
    for ordering in ("unordered", "key"):
        for workers in (1, 2):
            runs.append(
                (
                    f"parafka process {ordering} workers={workers}",
                    lambda o=ordering, w=workers: parafka_rate(
                        ParafkaService(
                            config, topic, out(), executor="process", workers=w, ordering=o
                        ),
                        count,
                    ),
                )
            )
    for concurrency in (1, 2):
        runs.append(
            (
                f"parafka thread unordered C={concurrency}",
                lambda c=concurrency: parafka_rate(
                    ParafkaService(
                        config, topic, out(), executor="thread", concurrency=c, ordering="unordered"
                    ),
                    count,
                ),
            )
        )
    rows = []
    for name, run in runs:
        note(f"throughput: {name} ...")
        rate = run()
        note(f"throughput: {name}: {fmt_rate(rate)} records/s")
        rows.append((name, rate))
    return rows


# -- latency: the reader in its own process (the load generator: examples/anomaly/latency.py) --
def _read(config: dict[str, Any], topic: str, stop: Any, expected: Any, out: Any) -> None:
    """Child process: every verdict of `topic` as (request id, verdict timestamp ms, received
    ms), from the start until `stop` is set and `expected` verdicts came (or none for 2 s)."""
    consumer = Consumer(
        {**config, "group.id": fresh_group("bench-anomaly-read"), "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen: list[tuple[str, int, float]] = []
    last_new = time.monotonic()
    deadline: float | None = None
    try:
        while True:
            # poll() returns as soon as one verdict is there; consume(n, 0) then takes what
            # is already queued. (consume(n, timeout) alone would wait for n or the timeout,
            # which would add up to the timeout to the measured latency.)
            first = consumer.poll(0.05)
            received = time.time() * 1000.0
            batch = [first, *consumer.consume(1000, 0)] if first is not None else []
            for message in batch:
                if message.error() is None:
                    verdict_id = json.loads(message.value())["id"]
                    seen.append((verdict_id, message.timestamp()[1], received))
            now = time.monotonic()
            if batch:
                last_new = now
            if stop.is_set():
                deadline = deadline or now + 60.0
                if len(seen) >= expected.value or now - last_new > 2.0 or now > deadline:
                    break
    finally:
        consumer.close()
    out.put(seen)


@dataclass
class LatencyRun:
    """One service setup at one fetch.wait.max.ms, through every offered rate."""

    name: str
    fetch_wait: int | None  # None: the client's default
    phases: list[Phase]


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        time.sleep(0.01)


def latency(
    broker: LocalBroker,
    base: dict[str, Any],
    name: str,
    make: Callable[[dict[str, Any], str, str], Service],
    fetch_wait: int | None,
    rates: Sequence[int],
    duration: float,
) -> LatencyRun:
    """Run the service made by `make(config, topic, out)` through `rates`, one after the other
    (each drained before the next), and measure every verdict."""
    config = dict(base)
    if fetch_wait is not None:
        config["fetch.wait.max.ms"] = fetch_wait
    ctx = multiprocessing.get_context("spawn")
    servers = broker.bootstrap_servers
    topic = broker.new_topic("offered", PARTITIONS)
    out = broker.new_topic("scored", PARTITIONS)
    service = make(config, topic, out)
    service.start()
    reader_config = {k: v for k, v in config.items() if k.startswith("fetch.")}
    reader_config["bootstrap.servers"] = servers
    stop, expected, collected = ctx.Event(), ctx.Value("q", 0), ctx.Queue()
    reader = ctx.Process(target=_read, args=(reader_config, out, stop, expected, collected))
    phases = [Phase(rate) for rate in rates]
    try:
        _wait_until(lambda: service.assigned, 60, f"{name}: no partitions")
        reader.start()
        note(f"latency: {name}, fetch.wait.max.ms={fetch_wait or 'default'}: warming up")
        warm, _ = offer_in_child(ctx, servers, topic, WARM_UP, None, 100)
        total = len(warm)
        _wait_until(lambda: service.processed >= total, 120, f"{name}: warm-up not done")
        for index, phase in enumerate(phases):
            count = int(phase.rate * duration)
            phase.sent_at, phase.offered = offer_in_child(
                ctx, servers, topic, count, phase.rate, 101 + index
            )
            total += len(phase.sent_at)
            _wait_until(lambda t=total: service.processed >= t, 300, f"{name}: not drained")
            note(
                f"latency: {name}, fetch.wait.max.ms={fetch_wait or 'default'}: "
                f"{phase.rate:,}/s offered ({phase.offered:,.0f}/s sent) done"
            )
            time.sleep(0.5)
        expected.value = total
    except BaseException:
        if reader.is_alive():
            reader.terminate()
        raise
    finally:
        stop.set()
        service.stop()
    seen = collected.get(timeout=120)
    reader.join(30)
    match(phases, seen)
    return LatencyRun(name, fetch_wait, phases)


def p99(run: LatencyRun, rate: int, by: str = "ts") -> float:
    phase = next((p for p in run.phases if p.rate == rate), None)
    if phase is None:
        return float("nan")
    return percentiles(phase.by_ts if by == "ts" else phase.by_read)[2]


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument("--records", type=int, help="throughput records (200,000; quick 30,000)")
    parser.add_argument("--duration", type=float, help="seconds per offered rate (10; quick 4)")
    args = parser.parse_args(argv)
    count = args.records or (30_000 if args.quick else 200_000)
    duration = args.duration or (4.0 if args.quick else 10.0)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    with tempfile.TemporaryDirectory(prefix="parafka-anomaly-") as models, LocalBroker() as broker:
        model = Path(models) / "model.joblib"
        os.environ[MODEL_ENV] = str(model)  # worker processes inherit it
        report = train(model)
        note(report.lines()[0])
        config: dict[str, Any] = {**broker.client_config(), "fetch.queue.backoff.ms": 10}

        rates = throughput(broker, config, count)

        def plain(cfg: dict[str, Any], topic: str, out: str) -> Service:
            return PlainLoop(cfg, topic, out, BATCH_WAIT)

        def process(workers: int) -> Callable[[dict[str, Any], str, str], Service]:
            return lambda cfg, topic, out: ParafkaService(
                cfg,
                topic,
                out,
                executor="process",
                workers=workers,
                ordering="unordered",
                batch_wait=BATCH_WAIT,
            )

        def thread(concurrency: int) -> Callable[[dict[str, Any], str, str], Service]:
            return lambda cfg, topic, out: ParafkaService(
                cfg,
                topic,
                out,
                executor="thread",
                concurrency=concurrency,
                ordering="unordered",
                batch_wait=BATCH_WAIT,
            )

        plans: list[
            tuple[str, Callable[[dict[str, Any], str, str], Service], int | None, tuple[int, ...]]
        ]
        plans = [
            ("parafka process unordered workers=2", process(2), None, RATES),
            ("parafka process unordered workers=2", process(2), LOW_FETCH_WAIT, RATES),
            ("plain loop (1 process)", plain, None, RATES),
            ("plain loop (1 process)", plain, LOW_FETCH_WAIT, RATES),
            ("parafka process unordered workers=1", process(1), LOW_FETCH_WAIT, RATES[:1]),
            ("parafka thread unordered C=1", thread(1), LOW_FETCH_WAIT, RATES[:1]),
            ("parafka thread unordered C=2", thread(2), LOW_FETCH_WAIT, RATES[:1]),
        ]
        runs = [
            latency(broker, config, name, make, wait, plan_rates, duration)
            for name, make, wait, plan_rates in plans
        ]

    report_all(rates, runs, count, duration, started)
    return 0


def report_all(
    rates: list[tuple[str, float]],
    runs: list[LatencyRun],
    count: int,
    duration: float,
    started: str,
) -> None:
    caption = (
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"run started {started}."
    )
    baseline = rates[0][1]
    console.print(
        table(
            f"Anomaly scoring throughput ({count:,} requests, {PARTITIONS} partitions, "
            f"batch_size {BATCH_SIZE})",
            ["config", "records/s", "x baseline"],
            [(name, fmt_rate(rate), fmt_ratio(rate / baseline)) for name, rate in rates],
            caption=caption + " Baseline: the plain loop, consume(1000) -> score() -> "
            "produce -> flush -> commit.",
        )
    )

    rows = []
    for run in runs:
        for phase in run.phases:
            ts = percentiles(phase.by_ts)
            read = percentiles(phase.by_read)
            rows.append(
                (
                    run.name,
                    str(run.fetch_wait or "500 (default)"),
                    fmt_rate(phase.rate),
                    fmt_rate(phase.offered),
                    fmt_rate(phase.served),
                    f"{phase.missing}/{phase.duplicates}",
                    *(f"{value:,.0f}" for value in ts),
                    f"{read[2]:,.0f}",
                )
            )
    console.print(
        table(
            f"End-to-end latency, ms ({duration:.0f} s per offered rate, batch_size "
            f"{BATCH_SIZE}, batch_wait {BATCH_WAIT})",
            [
                "service",
                "fetch.wait.max.ms",
                "offered/s",
                "sent/s",
                "verdicts/s",
                "missing/dup",
                "p50 ts",
                "p95 ts",
                "p99 ts",
                "max ts",
                "p99 read",
            ],
            rows,
            caption=(
                "ts: verdict timestamp (set when the service produces it) - request timestamp "
                "(send time); read: when the reader received the verdict - request timestamp. "
                "The acknowledgement lies between the two. fetch.wait.max.ms applies to the "
                "service and the reader."
            ),
            text_columns=2,
        )
    )

    low = {run.name: run for run in runs if run.fetch_wait == LOW_FETCH_WAIT}
    summary = []
    for name, rate in rates:
        run = low.get(name)
        summary.append(
            (
                name,
                fmt_rate(rate),
                fmt_ratio(rate / baseline),
                f"{p99(run, RATES[0]):,.0f}" if run else "-",
                f"{p99(run, RATES[0], 'read'):,.0f}" if run else "-",
            )
        )
    console.print(
        table(
            "How the numbers move with workers / concurrency",
            ["config", "records/s", "x baseline", "p99 ts @1,000/s", "p99 read @1,000/s"],
            summary,
            caption=f"Latency columns: fetch.wait.max.ms={LOW_FETCH_WAIT}, ms.",
        )
    )
    _verdicts(rates, runs)


def _verdicts(rates: list[tuple[str, float]], runs: list[LatencyRun]) -> None:
    rate = dict(rates)["parafka process unordered workers=2"]
    best_name, best = max(((n, r) for n, r in rates if n.startswith("parafka")), key=lambda x: x[1])
    met = "MET" if rate >= TARGET_RATE else "MISSED"
    console.print(
        f"Throughput target >= {TARGET_RATE:,} records/s on 2 cores: {met} "
        f"(process executor, 2 workers, unordered: {fmt_rate(rate)} records/s; "
        f"best: {best_name} {fmt_rate(best)}; plain loop {fmt_rate(rates[0][1])})",
        highlight=False,
    )
    for run in runs:
        if run.name != "parafka process unordered workers=2":
            continue
        low, high = p99(run, RATES[0]), p99(run, RATES[0], "read")
        if high <= TARGET_P99_MS:
            met = "MET"
        elif low <= TARGET_P99_MS:
            met = "MET by verdict timestamp only (not at the reader)"
        else:
            met = "MISSED"
        console.print(
            f"Latency target p99 <= {TARGET_P99_MS:.0f} ms at {RATES[0]:,}/s, "
            f"fetch.wait.max.ms={run.fetch_wait or '500 (default)'}: {met} "
            f"(p99 {low:,.0f} ms by verdict timestamp, {high:,.0f} ms at the reader)",
            highlight=False,
        )


if __name__ == "__main__":
    sys.exit(main())
