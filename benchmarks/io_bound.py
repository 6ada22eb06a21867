"""IO-bound benchmark: handlers that sleep 10-30 ms, parafka beside its baselines.

Runs, on one broker and in one process:
- the ideal by Little's law: C / mean handler time (min(C, partitions) in partition mode);
- a plain serial consume loop (on a prefix: the full run would take minutes);
- the "consume(C), one thread per record, join, commit" pattern with the same C;
- parafka in unordered and key mode at each concurrency, and in partition mode on a
  smaller topic (only one record per partition runs at a time, so it is slow by design);
- with `--broker kafka` (Apache Kafka, `parafka.testing.KafkaBroker`), also parafka in a
  share group (`group_type="share"`, unordered) at each concurrency, beside consumer-group
  unordered: same handler, same records, a fresh share group per run that starts at the
  log start.

Usage: python benchmarks/io_bound.py [--records N] [--quick] [--broker local|kafka]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common import (
    Ordering,
    Result,
    SleepJob,
    add_broker_option,
    batch_threads_loop,
    broker_label,
    console,
    fmt_rate,
    fmt_ratio,
    mean_sleep_seconds,
    note,
    open_broker,
    parafka_run,
    plain_loop,
    produce,
    sleep_items,
    table,
)

from parafka.testing import KafkaBroker

PARTITIONS = 4
KEYS = 1000
SEED = 20240611
CONCURRENCIES = (20, 100)
PARTITION_MODE_CONCURRENCY = 20


@dataclass
class Row:
    result: Result
    kind: str  # "serial", "batch" or "parafka"
    concurrency: int
    ideal: float  # records/s by Little's law


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="records in the main topic")
    parser.add_argument("--quick", action="store_true", help="a small run (a minute or so)")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    records = 4_000 if args.quick and args.records == 20_000 else args.records
    partition_records = 400 if args.quick else 2_000
    serial_records = 200 if args.quick else 1_000

    with open_broker(args.broker) as broker:
        where = broker_label(broker)
        config = broker.client_config()
        servers = broker.bootstrap_servers
        note(f"broker on {servers}; producing {records:,} + {partition_records:,} sleep jobs")
        main_items = sleep_items(records, KEYS, PARTITIONS, SEED)
        main_topic = broker.new_topic("io-bound", PARTITIONS)
        produce(servers, main_topic, main_items)
        part_items = sleep_items(partition_records, KEYS, PARTITIONS, SEED + 7)
        part_topic = broker.new_topic("io-bound-partition", PARTITIONS)
        produce(servers, part_topic, part_items)
        mean_t, part_mean_t = mean_sleep_seconds(main_items), mean_sleep_seconds(part_items)
        note(f"mean sleep: {mean_t * 1000:.2f} ms (main), {part_mean_t * 1000:.2f} ms (partition)")

        rows: list[Row] = []

        def timed(
            name: str, kind: str, concurrency: int, ideal: float, run: Callable[[SleepJob], int]
        ) -> None:
            note(f"{name} ...")
            job = SleepJob()
            handled = run(job)
            result = job.result(name, handled)
            rows.append(Row(result, kind, concurrency, ideal))
            note(
                f"{name}: {handled:,} records in {result.seconds:.2f} s = "
                f"{fmt_rate(result.rate)}/s ({result.rate / ideal:.1%} of ideal)"
            )

        timed(
            "serial loop",
            "serial",
            1,
            1 / mean_t,
            lambda job: plain_loop(config, main_topic, job.message, serial_records),
        )
        for c in CONCURRENCIES:
            timed(
                f"batch+threads C={c}",
                "batch",
                c,
                c / mean_t,
                lambda job, c=c: batch_threads_loop(config, main_topic, job.message, records, c),
            )
            orderings: tuple[Ordering, ...] = ("unordered", "key")
            for ordering in orderings:
                timed(
                    f"parafka {ordering} C={c}",
                    "parafka",
                    c,
                    c / mean_t,
                    lambda job, o=ordering, c=c: parafka_run(
                        job.record, config, main_topic, records, o, c
                    ),
                )
                if ordering == "unordered" and isinstance(broker, KafkaBroker):
                    timed(
                        f"parafka share unordered C={c}",
                        "parafka",
                        c,
                        c / mean_t,
                        lambda job, c=c, b=broker: parafka_run(
                            job.record,
                            config,
                            main_topic,
                            records,
                            "unordered",
                            c,
                            share_group=b.new_share_group("bench-share"),
                        ),
                    )
        c = PARTITION_MODE_CONCURRENCY
        timed(
            f"parafka partition C={c}",
            "parafka",
            c,
            min(c, PARTITIONS) / part_mean_t,
            lambda job: parafka_run(
                job.record, config, part_topic, partition_records, "partition", c
            ),
        )

    report(rows, records, partition_records, where)
    return 0


def report(rows: list[Row], records: int, partition_records: int, where: str) -> None:
    serial = next(r.result.rate for r in rows if r.kind == "serial")
    batch = {r.concurrency: r.result.rate for r in rows if r.kind == "batch"}
    unordered = {
        r.concurrency: r.result.rate for r in rows if r.result.name.startswith("parafka unordered")
    }
    body = []
    for row in rows:
        res = row.result
        versus_batch = batch.get(row.concurrency) if row.kind == "parafka" else None
        body.append(
            [
                res.name,
                f"{res.records:,}",
                f"{res.seconds:.2f}",
                fmt_rate(res.rate),
                f"{res.handler_ms:.2f}" if res.handler_ms is not None else "-",
                fmt_rate(row.ideal),
                f"{res.rate / row.ideal:.1%}",
                fmt_ratio(res.rate / serial),
                fmt_ratio(res.rate / versus_batch) if versus_batch else "-",
            ]
        )
    caption = (
        f"{where}. {PARTITIONS} partitions, {KEYS} keys, sleeps uniform in 10-30 ms. Time "
        "runs from the first handler call to the end of the last (group join excluded). "
        f"Ideal = C / mean sleep; partition mode: min(C, {PARTITIONS}) / mean sleep, on its own "
        f"{partition_records:,}-record topic. x batch compares with the batch + thread per "
        "record pattern at the same C. share = a share group (group_type='share'), the "
        f"same records. Serial ran on the first {rows[0].result.records:,} "
        f"records. Handler ms = measured mean time inside the handler. Machine: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}."
    )
    console.print()
    console.print(
        table(
            f"IO-bound handlers: {records:,} records",
            [
                "run",
                "records",
                "seconds",
                "records/s",
                "handler ms",
                "ideal/s",
                "% of ideal",
                "x serial",
                "x batch",
            ],
            body,
            caption,
        )
    )
    for row in rows:
        if row.kind != "parafka":
            continue
        res = row.result
        versus_batch = batch.get(row.concurrency)
        batch_text = f", {res.rate / versus_batch:.2f}x batch+threads" if versus_batch else ""
        verdict = "meets" if res.rate / row.ideal >= 0.95 else "MISSES"
        group = unordered.get(row.concurrency) if res.name.startswith("parafka share") else None
        group_text = f", {res.rate / group:.2f}x consumer-group unordered" if group else ""
        console.print(
            f"{res.name}: {res.rate / row.ideal:.1%} of ideal ({verdict} the 95% target), "
            f"{res.rate / serial:.1f}x serial{batch_text}{group_text}",
            highlight=False,
        )


if __name__ == "__main__":
    sys.exit(main())
