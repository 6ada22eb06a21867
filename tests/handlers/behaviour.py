"""Handlers for the executor behaviour suite. Each reports what it processed as an output
record (JSON: partition, offset, key, attempt, pid), so the tests can observe every
executor the same way, worker processes included. Importable, so process workers can
load them by name."""

from __future__ import annotations

import asyncio
import os
import time

from parafka import Output, Record


def _report(record: Record) -> Output:
    key = None if record.key is None else record.key.decode()
    return Output(
        {
            "p": record.partition,
            "o": record.offset,
            "k": key,
            "a": record.attempt,
            "pid": os.getpid(),
        },
        key=record.key,
    )


def record_it(record: Record) -> Output:
    time.sleep(0.001)
    return _report(record)


async def record_it_async(record: Record) -> Output:
    await asyncio.sleep(0.001)
    return _report(record)


def fail_first_attempt(record: Record) -> Output:
    """Every record fails once; the retry (attempt 2) succeeds."""
    if record.attempt == 1 and record.offset % 10 == 3:
        raise RuntimeError(f"transient failure at offset {record.offset}")
    return _report(record)


async def fail_first_attempt_async(record: Record) -> Output:
    return fail_first_attempt(record)


def poison_offset_3(record: Record) -> Output:
    """Offset 3 of partition 0 always fails; everything else succeeds."""
    if record.partition == 0 and record.offset == 3:
        raise ValueError("poison")
    return _report(record)


async def poison_offset_3_async(record: Record) -> Output:
    return poison_offset_3(record)


def slow(record: Record) -> Output:
    time.sleep(0.02)
    return _report(record)


async def slow_async(record: Record) -> Output:
    await asyncio.sleep(0.02)
    return _report(record)


def batch_it(records: list[Record]) -> list[Output]:
    return [_report(r) for r in records]


async def batch_it_async(records: list[Record]) -> list[Output]:
    return [_report(r) for r in records]


def die_once(record: Record) -> Output:
    """Kills its worker process on the first attempt at offset 5 of partition 0."""
    if record.partition == 0 and record.offset == 5 and record.attempt == 1:
        os._exit(3)
    return _report(record)


POISON_IN_BATCH = {17, 80}


def batch_with_poison(records: list[Record]) -> list[Output]:
    """Fails any batch that holds offset 17 or 80 of partition 0."""
    if any(r.partition == 0 and r.offset in POISON_IN_BATCH for r in records):
        raise ValueError("poison in batch")
    return [_report(r) for r in records]


async def batch_with_poison_async(records: list[Record]) -> list[Output]:
    return batch_with_poison(records)
