"""IO-bound handlers: each record waits on a remote call, as when enriching orders from an
HTTP API or a database. Here the call is simulated: it waits for the milliseconds the
record's value holds (20 when the value is not a number).

    parafka run examples.slow_calls:handle -b localhost:9092 -g enrich -t orders \\
        -o enriched --ordering key -c 64
    parafka run examples.slow_calls:handle_async -b localhost:9092 -g enrich -t orders \\
        -o enriched -c 1000                      # asyncio executor: thousands of waits

Expect concurrency / call time records/s (Little's law) in `key` and `unordered` mode,
capped by the distinct keys in `key` mode and by partitions / call time in `partition`
mode. `python -m examples.demo --scene sleep` measures it beside the batch + thread-per-record loop
most services use today, `--scene partitions` shows the caps.
"""

from __future__ import annotations

import asyncio
import time

from parafka import Output, Record

DEFAULT_MS = 20.0


def _call_ms(record: Record) -> float:
    try:
        return float(record.value or b"")
    except ValueError:
        return DEFAULT_MS


def _answer(record: Record, waited_ms: float) -> Output:
    return Output({"offset": record.offset, "waited_ms": round(waited_ms, 3)}, key=record.key)


def handle(record: Record) -> Output:
    """A blocking call (requests, a database driver): runs in a worker thread."""
    waited = _call_ms(record)
    time.sleep(waited / 1000.0)
    return _answer(record, waited)


async def handle_async(record: Record) -> Output:
    """The same call with an async client (aiohttp, asyncpg): runs on the event loop."""
    waited = _call_ms(record)
    await asyncio.sleep(waited / 1000.0)
    return _answer(record, waited)
