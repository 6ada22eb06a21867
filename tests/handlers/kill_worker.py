"""A handler whose worker process dies on offset 7 of partition 0 (every attempt), and that
returns an output for every other record (importable by process workers)."""

from __future__ import annotations

import os

from parafka import Output, Record


def handle(record: Record) -> Output:
    if record.partition == 0 and record.offset == 7:
        os._exit(3)  # the worker dies mid-chunk, as a segfault in native code would
    return Output(b"%d:%d" % (record.partition, record.offset), key=record.key)
