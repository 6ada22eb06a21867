"""Handlers for the --on-stuck tests (importable by process workers): offset 3 of
partition 0 hangs for an hour, on its first attempt only (`hang_once`) or on every
attempt (`hang_always`); every other record is done at once."""

from __future__ import annotations

import time

from parafka import Record


def hang_once(record: Record) -> None:
    if (record.partition, record.offset) == (0, 3) and record.attempt == 1:
        time.sleep(3600)


def hang_always(record: Record) -> None:
    if (record.partition, record.offset) == (0, 3):
        time.sleep(3600)
