"""Exactly-once outputs: produced into the open transaction as they are released, or all at
once when the transaction commits. Apache Kafka (which hides aborted records from
read_committed readers, unlike the local broker), one output per record.

Each run: a fresh group and a fresh output topic, `--records` records (4 partitions, 1,000
keys), parafka with exactly_once=True and a handler that returns the record's value. The
rate is taken from the consumer's stats, from the first record processed to the last; then
the output topic is read back read_committed and every input must be there exactly once.
The two ways alternate for `--rounds` rounds.

Usage: python benchmarks/transactions.py [--records N] [--rounds R] [--ordering key|unordered]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

from common import console, fmt_rate, fresh_group, keyed_items, parafka_rate, produce, table

from parafka import Record
from parafka.engine.control import ControlLoop
from parafka.testing import KafkaBroker

PARTITIONS = 4
KEYS = 1000
WAYS = {"in one burst at commit": False, "as released (streamed)": True}


def echo(record: Record) -> bytes | None:
    return record.value


def one_run(broker: KafkaBroker, topic: str, count: int, ordering: str, stream: bool) -> float:
    out = fresh_group("txn-out")
    broker.create_topic(out, PARTITIONS)
    ControlLoop.stream_outputs = stream
    config = {"bootstrap.servers": broker.bootstrap_servers, "fetch.queue.backoff.ms": 10}
    rate = parafka_rate(
        echo, config, topic, count, ordering=ordering, output_topic=out, exactly_once=True
    )
    outputs = broker.consume_all(out, expected=count, timeout=60)
    values = {m.value() for m in outputs}
    if len(outputs) != count or len(values) != count:
        raise RuntimeError(
            f"stream={stream}: {len(outputs)} outputs read back ({len(values)} distinct), "
            f"expected {count} exactly once"
        )
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ordering", choices=("key", "unordered"), default="key")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {name: [] for name in WAYS}
    with KafkaBroker() as broker:
        topic = fresh_group("txn-in")
        broker.create_topic(topic, PARTITIONS)
        values = (b"value-%d" % i for i in range(args.records))
        produce(
            broker.bootstrap_servers, topic, keyed_items(args.records, KEYS, PARTITIONS, values, 11)
        )
        for round_ in range(1, args.rounds + 1):
            for name, stream in WAYS.items():
                rate = one_run(broker, topic, args.records, args.ordering, stream)
                rates[name].append(rate)
                console.print(f"round {round_}: outputs {name}: {fmt_rate(rate)} records/s")
    rows = [
        [name, str(len(r)), fmt_rate(statistics.median(r)), fmt_rate(min(r)), fmt_rate(max(r))]
        for name, r in rates.items()
    ]
    console.print(
        table(
            f"exactly-once, {args.records:,} records, {args.ordering} order, Apache Kafka",
            ["outputs produced", "runs", "median/s", "min/s", "max/s"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
