"""A handler for the retry-topic tests: records whose value is 7 modulo 100 (1%) fail
until their third attempt in all (the quick ones, then those from the retry topic, read
from its parafka.retry.attempts header, so the count survives a kill); every success
appends "key partition offset" (of the source record) to PARAFKA_TEST_OUT."""

import os

from parafka import Record
from parafka.core.parking import origin

OUT = os.environ["PARAFKA_TEST_OUT"]


def failing(value: int) -> bool:
    return value % 100 == 7


def handle(record: Record) -> None:
    parked = origin(record.headers)
    partition, offset, before = record.partition, record.offset, 0
    if parked is not None:  # from the retry topic: name the source record
        partition, offset, before = parked.partition, parked.offset, parked.attempts
    if failing(int(record.value or b"0")) and before + record.attempt < 3:
        raise RuntimeError(f"{partition}@{offset} fails on attempt {before + record.attempt}")
    key = (record.key or b"").decode()
    # One small O_APPEND write per record: lines from concurrent workers never interleave.
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key} {partition} {offset}\n".encode())
    finally:
        os.close(fd)
