"""A handler for the multi-process CLI tests: appends "partition offset pid" to the file named
by PARAFKA_TEST_OUT, after sleeping PARAFKA_TEST_SLEEP_MS milliseconds (default 0)."""

import os
import time

from parafka import Record

OUT = os.environ["PARAFKA_TEST_OUT"]
SLEEP = float(os.environ.get("PARAFKA_TEST_SLEEP_MS", "0")) / 1000
PID = os.getpid()


def handle(record: Record) -> None:
    if SLEEP:
        time.sleep(SLEEP)
    # One small O_APPEND write per record: lines from concurrent processes never interleave.
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{record.partition} {record.offset} {PID}\n".encode())
    finally:
        os.close(fd)
