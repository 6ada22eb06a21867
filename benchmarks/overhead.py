"""Per-record overhead: a handler that does nothing, parafka against a plain consume loop.

The broker's fetch speed drifts a lot between runs on a shared machine, so the runs
alternate (plain, parafka config, plain, next config, ...) for several rounds, each in a
fresh consumer group, and the report compares medians. Target: parafka >= 0.25x plain.
Each run is timed whole (first handler call to last) and over its second half (from the
call that started the second half of the records): a short run's start, while the client
fills its queue, weighs on the whole-run rate of both sides.

Both sides use the same client settings, with librdkafka's fetch.queue.backoff.ms lowered
from its default of 1000 ms to 10 ms: with the default, once the consumer's local queue holds
queued.min.messages (100,000) the fetcher waits up to a second before fetching more, so a
fast loop spends most of its time idle and the comparison measures that wait, not the
per-record cost. Pass --fetch-queue-backoff-ms 1000 to measure with the default.

`--broker kafka` runs the same on Apache Kafka (`parafka.testing.KafkaBroker`).

`--tune-gc` calls `parafka.tune_gc()` first, as `parafka run` does: the garbage
collector then leaves the records a consumer holds alone (gctuning.py).

Usage: python benchmarks/overhead.py [--records N] [--rounds R] [--quick] [--tune-gc]
                                     [--fetch-queue-backoff-ms MS] [--broker local|kafka]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from common import (
    NoOp,
    Ordering,
    add_broker_option,
    broker_label,
    console,
    fmt_rate,
    fmt_ratio,
    keyed_items,
    note,
    open_broker,
    parafka_run,
    plain_loop,
    print_runs,
    produce,
    table,
)

from parafka import tune_gc
from parafka.core.record import MessageRecord

PARTITIONS = 4
KEYS = 1000
VALUE_BYTES = 100
CONFIGS: tuple[tuple[Ordering, int], ...] = (
    ("unordered", 4),
    ("unordered", 16),
    ("key", 4),
    ("key", 16),
)
PLAIN = "plain consume(1000) loop"
# The plain loop handing the handler a Record made from each message, as parafka does:
# what the per-record API costs with no engine, the floor for any parafka configuration.
RECORD_LOOP = "plain loop, a Record each"
TARGET = 0.25


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="50,000 records, 2 rounds")
    parser.add_argument(
        "--fetch-queue-backoff-ms",
        type=int,
        default=10,
        help="librdkafka fetch.queue.backoff.ms for both sides (its default: 1000)",
    )
    parser.add_argument(
        "--tune-gc",
        action="store_true",
        help="parafka.tune_gc() first, as `parafka run` does (the library alone does not)",
    )
    add_broker_option(parser)
    args = parser.parse_args(argv)
    if args.tune_gc:
        tune_gc()
    records = 50_000 if args.quick and args.records == 500_000 else args.records
    rounds = 2 if args.quick and args.rounds == 3 else args.rounds

    runs: list[tuple[int, str, float, float]] = []  # (round, name, seconds, records/s)
    halves: list[float] = []  # each run's records/s over its second half
    with open_broker(args.broker) as broker:
        where = broker_label(broker)
        config = broker.client_config(**{"fetch.queue.backoff.ms": args.fetch_queue_backoff_ms})
        topic = broker.new_topic("overhead", PARTITIONS)
        note(f"producing {records:,} records of {VALUE_BYTES} bytes to {PARTITIONS} partitions")
        started = time.perf_counter()
        values = (b"%0*d" % (VALUE_BYTES, i) for i in range(records))
        produce(broker.bootstrap_servers, topic, keyed_items(records, KEYS, PARTITIONS, values, 1))
        note(f"produced in {time.perf_counter() - started:.1f} s")

        def measure(round_no: int, name: str, handled: int, noop: NoOp) -> None:
            if handled != records:
                raise RuntimeError(f"{name}: handled {handled:,} of {records:,} records")
            seconds = noop.span.seconds
            runs.append((round_no, name, seconds, records / seconds))
            halves.append(half := noop.second_half_rate())
            note(
                f"round {round_no} {name}: {fmt_rate(records / seconds)} records/s "
                f"(second half {fmt_rate(half)})"
            )

        for round_no in range(1, rounds + 1):
            noop = NoOp()
            measure(round_no, PLAIN, plain_loop(config, topic, noop, records), noop)
            noop = NoOp()
            measure(round_no, RECORD_LOOP, plain_loop(config, topic, AsRecord(noop), records), noop)
            for ordering, concurrency in CONFIGS:
                noop = NoOp()
                measure(round_no, PLAIN, plain_loop(config, topic, noop, records), noop)
                noop = NoOp()
                handled = parafka_run(noop, config, topic, records, ordering, concurrency)
                measure(round_no, f"parafka {ordering} C={concurrency}", handled, noop)

    setup = f"fetch.queue.backoff.ms={args.fetch_queue_backoff_ms}"
    report(runs, halves, records, setup + (", tune_gc()" if args.tune_gc else ""), where)
    return 0


class AsRecord:
    """Hands the handler a parafka `Record` made from each message (a `MessageRecord`,
    whose fields are read from the message when used), as the engine does."""

    def __init__(self, handler: NoOp) -> None:
        self.handler = handler

    def __call__(self, message: Any) -> None:
        self.handler(MessageRecord(message, message.topic(), message.partition(), message.offset()))


def report(
    runs: list[tuple[int, str, float, float]],
    halves: list[float],
    records: int,
    setup: str,
    where: str,
) -> None:
    names = [PLAIN, RECORD_LOOP] + [f"parafka {o} C={c}" for o, c in CONFIGS]
    rates = {name: [rate for _, n, _, rate in runs if n == name] for name in names}
    pairs = list(zip(runs, halves, strict=True))
    second = {name: [h for (_, n, _, _), h in pairs if n == name] for name in names}
    # Each parafka run against the plain run just before it (the closest in time).
    paired: dict[str, list[float]] = {name: [] for name in names}
    previous_plain = float("nan")
    for _, name, _, rate in runs:
        if name == PLAIN:
            previous_plain = rate
        else:
            paired[name].append(rate / previous_plain)

    plain_median = statistics.median(rates[PLAIN])
    plain_second = statistics.median(second[PLAIN])
    body = []
    for name in names:
        values = rates[name]
        median = statistics.median(values)
        half = statistics.median(second[name])
        is_plain = name == PLAIN
        body.append(
            [
                name,
                str(len(values)),
                fmt_rate(median),
                fmt_rate(min(values)),
                fmt_rate(max(values)),
                "1.00x" if is_plain else fmt_ratio(median / plain_median),
                "-" if is_plain else fmt_ratio(statistics.median(paired[name])),
                fmt_rate(half),
                "1.00x" if is_plain else fmt_ratio(half / plain_second),
            ]
        )
    caption = (
        f"{where}. No-op handler, {records:,} records of {VALUE_BYTES} bytes, "
        f"{PARTITIONS} partitions, {KEYS} keys, {setup}; "
        "each run in a fresh group, timed from the first handler call to the "
        "last. Runs alternate plain, parafka, plain, ... x plain = ratio of medians; paired = "
        "median of each parafka run / the plain run just before it; 2nd half = the rate "
        "from the handler call that started the second half of the records to the last "
        "(the client's queue full, the handler time measured). Machine: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}."
    )
    print_runs(runs, "run")
    console.print()
    console.print(
        table(
            "Per-record overhead: no-op handler",
            [
                "run",
                "runs",
                "median/s",
                "min/s",
                "max/s",
                "x plain",
                "paired",
                "2nd half/s",
                "x plain, 2nd half",
            ],
            body,
            caption,
        )
    )
    best = max(names[2:], key=lambda name: statistics.median(rates[name]))
    ratio = statistics.median(rates[best]) / plain_median
    verdict = "meets" if ratio >= TARGET else "MISSES"
    console.print(
        f"best parafka config: {best}, {fmt_rate(statistics.median(rates[best]))} records/s = "
        f"{ratio:.2f}x the plain loop's {fmt_rate(plain_median)} ({verdict} the "
        f"{TARGET}x target)",
        highlight=False,
    )


if __name__ == "__main__":
    sys.exit(main())
