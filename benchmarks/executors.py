"""Executors under load: CPU-bound md5 transform, a no-op through worker processes, and
thousands of concurrent awaits, each beside its baselines in the same run.

- md5 transform (consume -> md5 of the value -> produce), 200,000 name events, 4 partitions:
  one plain batched loop, two plain loops in one group (two processes), the
  multiprocessing-queue pipeline (consumer process -> queue -> hash workers -> queue ->
  producer process), and parafka's process executor (unordered and key) and thread
  executor. Targets: parafka's best >= 0.9x two plain loops and >= 3x the queue pipeline.
- process executor, no-op handler, 200,000 records: >= 100,000 records/s.
- asyncio executor, 50,000 records awaiting a 10-30 ms sleep, concurrency 1,000:
  >= 20,000 records/s.

Rates for parafka and for the multi-process baselines are timed from the outside: from the
first record done to the last, sampled every 10 ms (workers live in other processes).

Usage: python benchmarks/executors.py [--quick] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import (
    console,
    fmt_rate,
    fmt_ratio,
    fresh_group,
    keyed_items,
    note,
    produce,
    table,
)

from parafka import ParallelConsumer, Record
from parafka.testing import LocalBroker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.md5_baselines import plain_loops, queue_pipeline
from examples.md5_transformer import encode, generate

PARTITIONS = 4
RESULTS_DIR = Path(__file__).resolve().parent


# -- parafka ----------------------------------------------------------------------------------
def parafka_rate(
    handler: Callable[..., Any] | str, config: dict[str, Any], topic: str, count: int, **kw: Any
) -> float:
    """records/s from the first record done to the last, sampled from stats()."""
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=str(config["bootstrap.servers"]),
        group_id=fresh_group("bench-exec"),
        topics=topic,
        kafka_config=config,
        **kw,
    )
    consumer.start()
    first = last = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            processed = consumer.stats().processed
            now = time.perf_counter()
            if processed and first is None:
                first = now
            if processed >= count:
                last = now
                break
            if not consumer.is_running:
                break
            time.sleep(0.01)
    finally:
        consumer.stop()
        consumer.join(60)
    if first is None or last is None:
        raise RuntimeError(f"parafka {kw} did not process {count} records")
    return count / (last - first)


def _parafka_member(
    target: str, config: dict[str, Any], topic: str, group: str, count: int, done: Any,
    times: Any, kw: dict[str, Any],
) -> None:  # fmt: skip
    """One consumer of a `--processes N`-style group: adds its progress to the shared
    counter every 10 ms until the whole group has handled `count` records."""
    consumer = ParallelConsumer(
        target, bootstrap_servers=str(config["bootstrap.servers"]), group_id=group,
        topics=topic, kafka_config=config, **kw,
    )  # fmt: skip
    consumer.start()
    seen = 0
    try:
        while done.value < count and consumer.is_running:
            processed = consumer.stats().processed
            if processed > seen:
                with done.get_lock():
                    if done.value == 0:
                        times[0] = time.time()
                    done.value += processed - seen
                    times[1] = time.time()
                seen = processed
            time.sleep(0.01)
    finally:
        consumer.stop()
        consumer.join(60)


def parafka_processes(
    target: str, config: dict[str, Any], topic: str, count: int, n: int, **kw: Any
) -> float:
    """`n` parafka consumers in one group, each its own process (what `parafka run
    --processes N` starts); records/s overall, timed like the plain loops."""
    ctx = multiprocessing.get_context("spawn")
    done, times = ctx.Value("q", 0), ctx.Array("d", [0.0, 0.0])
    group = fresh_group("bench-md5-parafka-procs")
    procs = [
        ctx.Process(
            target=_parafka_member, args=(target, config, topic, group, count, done, times, kw)
        )
        for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
    if done.value < count:
        raise RuntimeError(f"parafka x{n} {kw} handled {done.value} of {count} records")
    return count / (times[1] - times[0])


def noop(record: Record) -> None:
    return None


async def async_sleep(record: Record) -> None:
    await asyncio.sleep(float(record.value or b"0") / 1000.0)


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    md5_count = 40_000 if args.quick else 200_000
    noop_count = 40_000 if args.quick else 200_000
    async_count = 10_000 if args.quick else 50_000
    rows: list[tuple[str, str, float, str]] = []  # section, name, rate, note

    with LocalBroker() as broker:
        config: dict[str, Any] = {**broker.client_config(), "fetch.queue.backoff.ms": 10}
        servers = broker.bootstrap_servers
        names = broker.new_topic("md5-in", PARTITIONS)
        note(f"producing {md5_count:,} name events")
        events = generate(md5_count, seed=7)
        produce(servers, names, keyed_items(md5_count, 1000, PARTITIONS, map(encode, events), 7))

        def out() -> str:
            return broker.new_topic("md5-out", PARTITIONS)

        target = "examples.md5_transformer:handle"
        runs: list[tuple[str, Callable[[], float]]] = [
            ("plain loop x1", lambda: plain_loops(config, names, out(), md5_count, 1)),
            ("plain loops x2 (one group)", lambda: plain_loops(config, names, out(), md5_count, 2)),
            (
                f"queue pipeline ({args.workers} hash workers)",
                lambda: queue_pipeline(config, names, out(), md5_count, args.workers),
            ),
        ]
        for ordering in ("unordered", "key"):
            for workers in sorted({1, args.workers}):
                runs.append(
                    (
                        f"parafka process {ordering} workers={workers}",
                        lambda o=ordering, w=workers: parafka_rate(
                            target,
                            config,
                            names,
                            md5_count,
                            executor="process",
                            workers=w,
                            ordering=o,
                            output_topic=out(),
                        ),
                    )
                )
        for ordering in ("unordered", "key"):
            runs.append(
                (
                    f"parafka x2 processes, thread {ordering} C=4",
                    lambda o=ordering: parafka_processes(
                        target,
                        config,
                        names,
                        md5_count,
                        2,
                        ordering=o,
                        concurrency=4,
                        output_topic=out(),
                    ),
                )
            )
        runs.append(
            (
                "parafka thread unordered C=4",
                lambda: parafka_rate(
                    target,
                    config,
                    names,
                    md5_count,
                    ordering="unordered",
                    concurrency=4,
                    output_topic=out(),
                ),
            )
        )
        for name, run in runs:
            note(f"md5: {name} ...")
            rate = run()
            note(f"md5: {name}: {fmt_rate(rate)} records/s")
            rows.append(("md5", name, rate, ""))

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

        sleeps = broker.new_topic("async", PARTITIONS)
        rng = random.Random(11)
        values = [b"%.3f" % rng.uniform(10, 30) for _ in range(async_count)]
        produce(servers, sleeps, keyed_items(async_count, 1000, PARTITIONS, values, 5))
        name = "parafka async C=1000 (sleep 10-30 ms)"
        note(f"{name} ...")
        rate = parafka_rate(
            async_sleep, config, sleeps, async_count, concurrency=1000, ordering="unordered"
        )
        rows.append(("async", name, rate, "target >= 20,000; ideal 50,000"))

    report(rows, args.workers)
    return 0


def report(rows: list[tuple[str, str, float, str]], workers: int) -> None:
    md5 = {name: rate for section, name, rate, _ in rows if section == "md5"}
    two_loops = md5["plain loops x2 (one group)"]
    pipeline = next(rate for name, rate in md5.items() if name.startswith("queue pipeline"))
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
                f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"{time.strftime('%Y-%m-%d %H:%M')}; workers={workers}."
            ),
            text_columns=2,
        )
    )
    best = max((r for n, r in md5.items() if n.startswith("parafka")), default=float("nan"))
    note(
        f"md5 best parafka: {fmt_rate(best)} records/s = {fmt_ratio(best / two_loops)} two plain "
        f"loops (target 0.9x), {fmt_ratio(best / pipeline)} the queue pipeline (target 3x)"
    )
    _chart(rows)


def _chart(rows: list[tuple[str, str, float, str]]) -> None:
    """benchmarks/executors.png: records/s per configuration."""
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
    path = RESULTS_DIR / "executors.png"
    fig.savefig(path, dpi=110)
    note(f"chart written to {path}")


if __name__ == "__main__":
    sys.exit(main())
