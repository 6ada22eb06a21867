"""Handlers the reliability scenarios run through `parafka run reliability/handler.py:NAME`.

A record's value starts with the handler time in microseconds (ASCII), optionally followed
by a space and padding. `report` returns what the checks need as an output record (JSON):
source partition `p`, offset `o`, key `k`, the instance `i` (env PARAFKA_RELIABILITY_INSTANCE),
the process id and the handler's start time in nanoseconds `t`. Standalone (only parafka), so
process workers can load it by path.
"""

from __future__ import annotations

import json
import os
import time

from parafka import Output, Record

INSTANCE = os.environ.get("PARAFKA_RELIABILITY_INSTANCE", "")


def _sleep(record: Record) -> None:
    value = record.value or b"0"
    time.sleep(int(value.partition(b" ")[0]) / 1e6)


def report(record: Record) -> Output:
    started = time.time_ns()
    _sleep(record)
    body = {
        "p": record.partition,
        "o": record.offset,
        "k": None if record.key is None else record.key.decode(),
        "i": INSTANCE,
        "pid": os.getpid(),
        "t": started,
    }
    return Output(json.dumps(body, separators=(",", ":")), key=record.key)


def sleep(record: Record) -> None:
    _sleep(record)
