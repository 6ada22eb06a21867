"""The per-record API part by part: what a `Record`, the md5 handler, its `Output` and the
engine's output made from it cost, timed over real client messages with no engine.

Takes `--records` md5 name events from a local broker with a plain consumer, then times each
part over all of them, keeping every result (as the engine keeps records and outputs until
they are acknowledged), best of `--repeat`; ns a record. `--tune-gc` first calls
`parafka.tune_gc()`, as `parafka run` does.

Usage: python benchmarks/api_parts.py [--records N] [--repeat R] [--tune-gc]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from parafka import Output, tune_gc
from parafka.core.record import MessageRecord, plain_output
from parafka.testing import LocalBroker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for examples/
from examples.md5_baselines import md5_value
from examples.md5_transformer import _hashed, encode, generate, handle


def _messages(count: int) -> list[Any]:
    with LocalBroker() as broker:
        topic = broker.new_topic("api-parts", 1)
        events = generate(count, seed=7)
        broker.produce(topic, [(b"%d" % (i % 1000), encode(e)) for i, e in enumerate(events)])
        return broker.consume_all(topic, expected=count, timeout=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tune-gc", action="store_true")
    args = parser.parse_args(argv)
    messages = _messages(args.records)
    if args.tune_gc:
        tune_gc()
    records = [MessageRecord(m, m.topic(), m.partition(), m.offset()) for m in messages]
    outputs = [handle(r) for r in records]
    pairs = [(_hashed(r), r.key) for r in records]
    parts: dict[str, Callable[[], object]] = {
        "the plain loop's work, md5_value(m.value())": lambda: [
            md5_value(m.value()) for m in messages
        ],
        "a Record for each message": lambda: [
            MessageRecord(m, m.topic(), m.partition(), m.offset()) for m in messages
        ],
        "the handler's own work, _hashed(record)": lambda: [_hashed(r) for r in records],
        "the whole handler, handle(record)": lambda: [handle(r) for r in records],
        "Output(value, key=key)": lambda: [Output(v, key=k) for v, k in pairs],
        "Output(value, key)": lambda: [Output(v, k) for v, k in pairs],
        "a plain (value, key) tuple": lambda: [(v, k) for v, k in pairs],
        "plain_output(output, topic): the engine's output": lambda: [
            plain_output(o, "out") for o in outputs
        ],
        "record.key": lambda: [r.key for r in records],
        "record.value": lambda: [r.value for r in records],
    }
    print(f"{len(messages):,} messages, best of {args.repeat}, ns a record")
    for name, part in parts.items():
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            part()
            best = min(best, time.perf_counter() - start)
        print(f"{best / len(messages) * 1e9:7,.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
