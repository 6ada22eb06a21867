"""The md5 transformer, per-record handler, on the thread executor (the default), at several
concurrencies and with `-c auto`, beside one plain consume -> md5 -> produce loop.

What a user who writes the natural handler and keeps the defaults gets (issue 14's "md5
default" figure), and whether `concurrency="auto"` finds a good number of threads for a
CPU-bound handler by itself. The configurations alternate (plain, C=16, auto, ...) for
`--rounds` rounds, each in a fresh group writing its own output topic; each rate is taken
from the output topic: 99% of the records over the time from the first output's timestamp
to the 99th percentile's (the tail of a run waits for its last fetch).

Usage: python benchmarks/md5_threads.py [--records N] [--rounds R]
                                        [--configs plain,16,auto,4,1] [--ordering key|unordered]
                                        [--broker local|kafka]
"""

from __future__ import annotations

import argparse
import bisect
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import (
    add_broker_option,
    broker_label,
    fmt_rate,
    fmt_ratio,
    fresh_group,
    note,
    open_broker,
)

from parafka import ParallelConsumer
from parafka.testing import Broker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.md5_baselines import plain_loops
from examples.md5_transformer import encode, generate

HANDLER = "examples.md5_transformer:handle"
PARTITIONS = 4


def output_stamps(broker: Broker, topic: str, count: int) -> list[int]:
    """The timestamps (ms) of the `count` outputs in `topic`, in order."""
    messages = broker.consume_all(topic, expected=count, timeout=60)
    if len(messages) < count:
        raise RuntimeError(f"{topic}: {len(messages)} outputs, expected {count}")
    return sorted(m.timestamp()[1] for m in messages)


def tail_rate(broker: Broker, topic: str, count: int) -> float:
    """99% of `count` outputs over the time from the first output to the 99th percentile."""
    return run_rate(output_stamps(broker, topic, count))


def run_rate(stamps: list[int]) -> float:
    """`tail_rate` of these output timestamps."""
    last = int(len(stamps) * 0.99) - 1
    return (last + 1) / max(1e-3, (stamps[last] - stamps[0]) / 1000.0)


def run_window(stamps: list[int]) -> tuple[float, float]:
    """The wall-clock seconds `run_rate` is taken over: the first output to the 99th
    percentile's."""
    return stamps[0] / 1000.0, stamps[int(len(stamps) * 0.99) - 1] / 1000.0


def stamped_within(stamps: list[int], window: tuple[float, float]) -> int:
    """How many outputs were stamped within `window` (wall-clock seconds)."""
    first = bisect.bisect_left(stamps, window[0] * 1000.0)
    return bisect.bisect_right(stamps, window[1] * 1000.0) - first


def rate_within(stamps: list[int], window: tuple[float, float]) -> float | None:
    """The outputs stamped within `window` (wall-clock seconds) over its length; None when
    it holds fewer than a quarter of them (too short a time to tell)."""
    count = stamped_within(stamps, window)
    if count < len(stamps) // 4:
        return None
    return count / max(1e-3, window[1] - window[0])


def run(broker: Broker, config: dict[str, Any], topic: str, count: int, name: str,
        ordering: Any) -> float:  # fmt: skip
    out = broker.new_topic("md5-out", PARTITIONS)
    if name == "plain":
        plain_loops(config, topic, out, count, 1)
    else:
        consumer = ParallelConsumer(
            HANDLER,
            bootstrap_servers=broker.bootstrap_servers,
            group_id=fresh_group("md5-threads"),
            topics=[topic],
            output_topic=out,
            concurrency=name if name == "auto" else int(name),
            ordering=ordering,
            kafka_config={k: v for k, v in config.items() if k != "bootstrap.servers"},
        )
        stats = consumer.run(until_idle=1.0)
        if stats.processed < count:
            raise RuntimeError(f"C={name}: processed {stats.processed:,} of {count:,}")
    return tail_rate(broker, out, count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="plain,16,auto,4,1")
    parser.add_argument("--ordering", choices=("key", "unordered"), default="key")
    add_broker_option(parser)
    args = parser.parse_args(argv)
    names = args.configs.split(",")
    if "plain" not in names:
        names.insert(0, "plain")
    rates: dict[str, list[float]] = {name: [] for name in names}
    with open_broker(args.broker) as broker:
        config = broker.client_config(**{"fetch.wait.max.ms": 10})
        topic = broker.new_topic("names", PARTITIONS)
        events = generate(args.records, seed=7)
        broker.produce(topic, [(str(i).encode(), encode(e)) for i, e in enumerate(events)])
        note(f"{args.records:,} name events, {PARTITIONS} partitions, {broker_label(broker)}")
        for round_no in range(1, args.rounds + 1):
            for name in names:
                rate = run(broker, config, topic, args.records, name, args.ordering)
                rates[name].append(rate)
                note(f"round {round_no} {name}: {fmt_rate(rate)} records/s")
    plain = statistics.median(rates["plain"])
    print(f"\n| configuration ({args.ordering}) | median records/s | x one plain loop | rounds |")
    print("|---|--:|--:|---|")
    for name, values in rates.items():
        label = "plain loop" if name == "plain" else f"parafka -c {name}"
        median = statistics.median(values)
        print(f"| {label} | {fmt_rate(median)} | {fmt_ratio(median / plain)} | "
              f"{', '.join(fmt_rate(v) for v in values)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
