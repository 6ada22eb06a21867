"""What tracing costs: the no-op overhead benchmark with tracing off, on with a sampler
that drops every span, and on sampling every span, in one run.

The three modes alternate within each round (off, drop-all, sample-all, off, ...), each
run in a fresh consumer group, timed from the first handler call to the last like
`overhead.py`. One tracer provider serves the whole run (OpenTelemetry allows one per
process); its sampler is switched between runs. Sampled spans go through a
`BatchSpanProcessor` to an exporter that discards them: the cost measured is parafka's and
the SDK's per span, not a network exporter's. Sampling everything makes two spans per
record with a no-op handler: the attempt ("process <topic>") and its "commit" child (no
outputs, so no "ack").

Ratios are each traced run against the untraced run of the same round (the closest in
time), and the median of those. Targets (issue 16): drop-all loses at most 10%, sample-all
at most 30%.

Usage: python benchmarks/tracing.py [--records N] [--rounds R] [--quick]
                                    [--ordering key|unordered|partition] [--concurrency C]
                                    [--broker local|kafka]
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
    add_broker_option,
    broker_label,
    console,
    fmt_rate,
    fmt_ratio,
    keyed_items,
    note,
    open_broker,
    parafka_run,
    print_runs,
    produce,
    table,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult

PARTITIONS = 4
KEYS = 1000
VALUE_BYTES = 100
MODES = ("off", "drop-all", "sample-all")
TARGETS = {"drop-all": 0.90, "sample-all": 0.70}


class Switch(Sampler):
    """A sampler whose decision the benchmark changes between runs."""

    def __init__(self) -> None:
        self.to: Sampler = ALWAYS_OFF

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return self.to.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        # What it does now: a consumer started while it drops everything knows it can skip
        # the spans of records without a trace context (tracing.roots_dropped).
        return self.to.get_description()


class Discard(SpanExporter):
    """Takes spans and throws them away (counted)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 records, 1 round")
    parser.add_argument("--ordering", choices=("key", "unordered", "partition"), default="key")
    parser.add_argument("--concurrency", type=int, default=16)
    add_broker_option(parser)
    args = parser.parse_args(argv)
    records = 20_000 if args.quick and args.records == 200_000 else args.records
    rounds = 1 if args.quick and args.rounds == 3 else args.rounds

    sampler, exporter = Switch(), Discard()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536))
    trace.set_tracer_provider(provider)

    runs: list[tuple[int, str, float, float]] = []  # (round, mode, seconds, records/s)
    with open_broker(args.broker) as broker:
        where = broker_label(broker)
        config = broker.client_config(**{"fetch.queue.backoff.ms": 10})
        topic = broker.new_topic("tracing", PARTITIONS)
        note(f"producing {records:,} records of {VALUE_BYTES} bytes to {PARTITIONS} partitions")
        values = (b"%0*d" % (VALUE_BYTES, i) for i in range(records))
        produce(broker.bootstrap_servers, topic, keyed_items(records, KEYS, PARTITIONS, values, 1))
        for round_no in range(1, rounds + 1):
            for mode in MODES:
                sampler.to = ALWAYS_ON if mode == "sample-all" else ALWAYS_OFF
                noop = NoOp()
                before = exporter.spans
                handled = parafka_run(
                    noop,
                    config,
                    topic,
                    records,
                    args.ordering,
                    args.concurrency,
                    tracing=mode != "off",
                )
                if handled != records:
                    raise RuntimeError(f"{mode}: handled {handled:,} of {records:,} records")
                provider.force_flush()
                seconds = noop.span.seconds
                runs.append((round_no, mode, seconds, records / seconds))
                note(
                    f"round {round_no} {mode}: {fmt_rate(records / seconds)} records/s, "
                    f"{exporter.spans - before:,} spans exported"
                )
    provider.shutdown()
    report(runs, records, args.ordering, args.concurrency, where)
    return 0


def report(
    runs: list[tuple[int, str, float, float]],
    records: int,
    ordering: str,
    concurrency: int,
    where: str,
) -> None:
    rates = {mode: [rate for _, m, _, rate in runs if m == mode] for mode in MODES}
    untraced = {r: rate for r, m, _, rate in runs if m == "off"}
    paired = {mode: [rate / untraced[r] for r, m, _, rate in runs if m == mode] for mode in MODES}
    off = statistics.median(rates["off"])
    body = []
    for mode in MODES:
        values = rates[mode]
        median = statistics.median(values)
        ratio = statistics.median(paired[mode])
        target = TARGETS.get(mode)
        verdict = "-" if target is None else ("meets" if ratio >= target else "MISSES")
        body.append(
            [
                mode,
                str(len(values)),
                fmt_rate(median),
                fmt_rate(min(values)),
                fmt_rate(max(values)),
                fmt_ratio(median / off),
                fmt_ratio(ratio),
                "-" if target is None else f">= {target:.2f}x: {verdict}",
            ]
        )
    load = os.getloadavg()
    caption = (
        f"{where}. No-op handler, {records:,} records of {VALUE_BYTES} bytes, {PARTITIONS} "
        f"partitions, {KEYS} keys, ordering={ordering}, concurrency={concurrency}; each run "
        "in a fresh group, timed from the first handler call to the last; modes alternate "
        "within each round. x off = ratio of medians; paired = median of each run / the "
        f"untraced run of its round. Machine: {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f} at the end, {time.strftime('%Y-%m-%d %H:%M')}."
    )
    print_runs(runs, "mode")
    console.print()
    console.print(
        table(
            "Tracing cost: no-op handler",
            ["mode", "runs", "median/s", "min/s", "max/s", "x off", "paired", "target"],
            body,
            caption,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
