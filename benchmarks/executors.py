"""Executors under load: CPU-bound md5 transform, a no-op through worker processes, and
thousands of concurrent awaits, each beside its baselines in the same run.

- md5 transform (consume -> md5 of the value -> produce), 200,000 name events, 4 partitions:
  one plain batched loop, two plain loops in one group (two processes), the
  multiprocessing-queue pipeline (consumer process -> queue -> hash workers -> queue ->
  producer process), and parafka: two processes in one group (`--processes 2`) with a batch
  or a per-record handler, the process executor, one process; unordered and key. Every
  configuration runs `--rounds` times in turn; each rate is taken from the run's output
  topic (first output's timestamp to the last's). Targets: parafka's best >= 0.9x two plain
  loops and >= 3x the queue pipeline.
- process executor, no-op handler, 200,000 records: >= 100,000 records/s.
- asyncio executor, 50,000 records awaiting a 10-30 ms sleep, concurrency 1,000:
  >= 20,000 records/s.

The no-op and async rates are timed from the first record done to the last, sampled every
10 ms from parafka's stats.

`--only md5|noop|async` runs one of the three; `--broker kafka` runs on Apache Kafka
(`parafka.testing.KafkaBroker`), every baseline too.

Usage: python benchmarks/executors.py [--quick] [--workers N] [--rounds R]
                                      [--only md5|noop|async] [--broker local|kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import (
    add_broker_option,
    broker_label,
    console,
    fmt_rate,
    fmt_ratio,
    keyed_items,
    note,
    open_broker,
    parafka_rate,
    produce,
    table,
)

from parafka import Record
from parafka.testing import Broker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.md5_baselines import plain_loops, queue_pipeline, start_parafka_processes
from examples.md5_transformer import encode, generate

PARTITIONS = 4
MD5_BATCH = 1000  # records per handler call in the batch configurations
# Records held per process (--max-buffered) in the best configurations: room for a batch
# running, batches waiting and batches whose outputs await acknowledgement (the default,
# 4 x C x batch size = 4,000 here, leaves the fetch waiting on acknowledgements).
MD5_BUFFER = 12_000
RESULTS_DIR = Path(__file__).resolve().parent
SECTIONS = ("md5", "noop", "async")


# -- parafka ----------------------------------------------------------------------------------
def parafka_processes(
    target: str, config: dict[str, Any], topic: str, count: int, n: int, **kw: Any
) -> None:
    """`n` parafka consumers in one group, each its own process (what `parafka run
    --processes N` starts), until they handled `count` records (the md5 runs are timed from
    their outputs)."""
    out = kw.pop("output_topic")
    start_parafka_processes(config, topic, out, count, n, target=target, settings=kw).wait()


def noop(record: Record) -> None:
    return None


async def async_sleep(record: Record) -> None:
    await asyncio.sleep(float(record.value or b"0") / 1000.0)


# -- md5 ---------------------------------------------------------------------------------------
def output_rate(broker: Broker, topic: str, count: int) -> float:
    """records/s of a finished md5 run, from its output topic: `count` over the time from
    the first output produced to the last (the producers' CreateTime stamps, in ms). The
    same clock for every run, wherever its work happened. Read with `consume_all`, which
    replaces a reading client that the local broker stops serving."""
    messages = broker.consume_all(topic, expected=count, timeout=60)
    if len(messages) < count:
        raise RuntimeError(f"{topic}: {len(messages)} outputs, expected {count}")
    stamps = [m.timestamp()[1] for m in messages]
    return count / ((max(stamps) - min(stamps)) / 1000.0)


def _md5_configs(workers: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, how, parafka settings): how is "x2" (two parafka processes in one group,
    what `parafka run --processes 2` starts) or "x1" (one process). A CPU-bound batch
    handler gets one worker thread (C=1) per process: more threads only contend for the GIL."""
    per_record, batch = "examples.md5_transformer:handle", "examples.md5_transformer:handle_batch"
    configs: list[tuple[str, str, dict[str, Any]]] = []
    batched = {"handler": batch, "batch_size": MD5_BATCH, "concurrency": 1}
    for ordering in ("unordered", "key"):
        configs.append(
            (
                f"parafka x2 processes, {ordering}, batches of {MD5_BATCH}, C=1, "
                f"buffer {MD5_BUFFER:,}",
                "x2",
                {**batched, "ordering": ordering, "max_buffered": MD5_BUFFER},
            )
        )
    configs.append(
        (
            f"parafka x2 processes, unordered, batches of {MD5_BATCH}, C=1, default buffer",
            "x2",
            {**batched, "ordering": "unordered"},
        )
    )
    for ordering in ("unordered", "key"):
        configs.append(
            (
                f"parafka x2 processes, {ordering}, per record, C=4",
                "x2",
                {"handler": per_record, "ordering": ordering, "concurrency": 4},
            )
        )
    for threads in (1, 2):
        configs.append(
            (
                f"parafka x1 process, unordered, batches of {MD5_BATCH}, C={threads}",
                "x1",
                {
                    "handler": batch,
                    "ordering": "unordered",
                    "batch_size": MD5_BATCH,
                    "concurrency": threads,
                },
            )
        )
    for ordering, counts in (("unordered", sorted({1, workers})), ("key", [workers])):
        for count in counts:
            configs.append(
                (
                    f"parafka process executor, {ordering}, per record, workers={count}",
                    "x1",
                    {
                        "handler": per_record,
                        "ordering": ordering,
                        "executor": "process",
                        "workers": count,
                    },
                )
            )
    configs.append(
        (
            f"parafka process executor, unordered, batches of {MD5_BATCH}, workers={workers}",
            "x1",
            {
                "handler": batch,
                "ordering": "unordered",
                "executor": "process",
                "workers": workers,
                "batch_size": MD5_BATCH,
            },
        )
    )
    return configs


def _md5_runs(
    args: argparse.Namespace,
    config: dict[str, Any],
    broker: Broker,
    names: str,
    count: int,
    out: Callable[[], str],
) -> list[tuple[str, str, float, str]]:
    """Every md5 configuration, `args.rounds` times in turn (so that a slower moment of a
    shared machine touches every configuration alike); one row per configuration with the
    median rate, its spread in the note."""
    runs: list[tuple[str, Callable[[str], object]]] = [
        ("plain loop x1", lambda topic: plain_loops(config, names, topic, count, 1)),
        ("plain loops x2 (one group)", lambda topic: plain_loops(config, names, topic, count, 2)),
        (
            f"queue pipeline ({args.workers} hash workers)",
            lambda topic: queue_pipeline(config, names, topic, count, args.workers),
        ),
    ]
    for name, how, settings in _md5_configs(args.workers):
        settings = dict(settings)
        handler = settings.pop("handler")
        members = 2 if how == "x2" else 1  # each its own process, as `parafka run` starts
        runs.append(
            (
                name,
                lambda topic, h=handler, kw=settings, n=members: parafka_processes(
                    h, config, names, count, n, output_topic=topic, **kw
                ),
            )
        )
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    for round_number in range(1, args.rounds + 1):
        for name, run in runs:
            topic = out()
            run(topic)
            rate = output_rate(broker, topic, count)
            rates[name].append(rate)
            note(f"md5 round {round_number}: {name}: {fmt_rate(rate)} records/s")
    rows = []
    loops = rates["plain loops x2 (one group)"]
    for name, measured in rates.items():
        remark = f"{fmt_rate(min(measured))}-{fmt_rate(max(measured))}" if len(measured) > 1 else ""
        if name.startswith("parafka") and len(measured) > 1:
            # Each round's rate over the two loops' rate of the same round, then the median.
            paired = statistics.median(r / loop for r, loop in zip(measured, loops, strict=True))
            remark += f"; paired {fmt_ratio(paired)}"
        rows.append(("md5", name, statistics.median(measured), remark))
    return rows


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, help="md5 rounds (default 5, --quick 1)")
    parser.add_argument("--only", choices=SECTIONS, help="run only this workload")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    sections = (args.only,) if args.only else SECTIONS
    md5_count = 40_000 if args.quick else 200_000
    args.rounds = args.rounds or (1 if args.quick else 5)
    noop_count = 40_000 if args.quick else 200_000
    async_count = 10_000 if args.quick else 50_000
    rows: list[tuple[str, str, float, str]] = []  # section, name, rate, note

    with open_broker(args.broker) as broker:
        where = broker_label(broker)
        config: dict[str, Any] = {**broker.client_config(), "fetch.queue.backoff.ms": 10}
        if "md5" in sections:
            rows.extend(_md5_section(args, config, broker, md5_count))
        if "noop" in sections:
            rows.extend(_noop_section(args, config, broker, noop_count))
        if "async" in sections:
            rows.extend(_async_section(config, broker, async_count))

    report(rows, args.workers, where, chart=args.only is None, kafka=args.broker == "kafka")
    return 0


def _md5_section(
    args: argparse.Namespace, config: dict[str, Any], broker: Broker, md5_count: int
) -> list[tuple[str, str, float, str]]:
    names = broker.new_topic("md5-in", PARTITIONS)
    note(f"producing {md5_count:,} name events")
    events = generate(md5_count, seed=7)
    produce(
        broker.bootstrap_servers,
        names,
        keyed_items(md5_count, 1000, PARTITIONS, map(encode, events), 7),
    )

    def out() -> str:
        return broker.new_topic("md5-out", PARTITIONS)

    return _md5_runs(args, config, broker, names, md5_count, out)


def _noop_section(
    args: argparse.Namespace, config: dict[str, Any], broker: Broker, noop_count: int
) -> list[tuple[str, str, float, str]]:
    rows: list[tuple[str, str, float, str]] = []
    servers = broker.bootstrap_servers
    noop_topic = broker.new_topic("noop", PARTITIONS)
    produce(
        servers,
        noop_topic,
        keyed_items(noop_count, 1000, PARTITIONS, [b"x" * 100] * noop_count, 3),
    )
    for workers in sorted({1, args.workers}):
        name = f"parafka process no-op workers={workers}"
        note(f"{name} ...")
        rate = parafka_rate(
            f"{__name__}:noop" if __name__ != "__main__" else "executors:noop",
            config,
            noop_topic,
            noop_count,
            executor="process",
            workers=workers,
            ordering="unordered",
        )
        rows.append(("process no-op", name, rate, "target >= 100,000"))
    return rows


def _async_section(
    config: dict[str, Any], broker: Broker, async_count: int
) -> list[tuple[str, str, float, str]]:
    servers = broker.bootstrap_servers
    sleeps = broker.new_topic("async", PARTITIONS)
    rng = random.Random(11)
    values = [b"%.3f" % rng.uniform(10, 30) for _ in range(async_count)]
    produce(servers, sleeps, keyed_items(async_count, 1000, PARTITIONS, values, 5))
    name = "parafka async C=1000 (sleep 10-30 ms)"
    note(f"{name} ...")
    rate = parafka_rate(
        async_sleep, config, sleeps, async_count, concurrency=1000, ordering="unordered"
    )
    return [("async", name, rate, "target >= 20,000; ideal 50,000")]


def report(
    rows: list[tuple[str, str, float, str]],
    workers: int,
    where: str,
    chart: bool = True,
    kafka: bool = False,
) -> None:
    """The table; with `chart`, executors.png (executors-kafka.png on Apache Kafka)."""
    md5 = {name: rate for section, name, rate, _ in rows if section == "md5"}
    two_loops = md5.get("plain loops x2 (one group)", float("nan"))
    pipeline = next(
        (rate for name, rate in md5.items() if name.startswith("queue pipeline")), float("nan")
    )
    lines = []
    for section, name, rate, remark in rows:
        vs = ""
        if section == "md5":
            vs = f"{fmt_ratio(rate / two_loops)} / {fmt_ratio(rate / pipeline)}"
        lines.append((section, name, fmt_rate(rate), vs, remark))
    console.print(
        table(
            "Executors",
            ["workload", "run", "records/s", "x 2 loops / x pipeline", "note"],
            lines,
            caption=(
                f"{where}. Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"{time.strftime('%Y-%m-%d %H:%M')}; workers={workers}."
            ),
            text_columns=2,
        )
    )
    if md5:
        best = max((r for n, r in md5.items() if n.startswith("parafka")), default=float("nan"))
        note(
            f"md5 best parafka: {fmt_rate(best)} records/s = {fmt_ratio(best / two_loops)} two "
            f"plain loops (target 0.9x), {fmt_ratio(best / pipeline)} the queue pipeline "
            "(target 3x)"
        )
    if chart:
        _chart(rows, RESULTS_DIR / ("executors-kafka.png" if kafka else "executors.png"))


def _chart(rows: list[tuple[str, str, float, str]], path: Path) -> None:
    """records/s per configuration, as a bar chart at `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note("matplotlib not installed: no chart")
        return
    names = [f"{section}: {name}" for section, name, _, _ in rows]
    rates = [rate for _, _, rate, _ in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    colors = ["tab:gray" if "parafka" not in n else "tab:blue" for n in names]
    ax.barh(names[::-1], rates[::-1], color=colors[::-1])
    ax.set_xlabel("records/s")
    ax.set_title("parafka executors beside their baselines (same run, same broker)")
    for y, rate in enumerate(rates[::-1]):
        ax.text(rate, y, f" {rate:,.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    note(f"chart written to {path}")


if __name__ == "__main__":
    sys.exit(main())
