"""A handler for the share-group kill test: notes "offset attempt" in PARAFKA_TEST_OUT
as each record starts, then hangs until the test kills the process group."""

import os
import time

from parafka import Record

OUT = os.environ["PARAFKA_TEST_OUT"]


def handle(record: Record) -> None:
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{record.offset} {record.attempt}\n".encode())
    finally:
        os.close(fd)
    while True:  # holds the record (acquired, unacknowledged) until SIGKILL
        time.sleep(1)
