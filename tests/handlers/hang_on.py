"""A handler for the commit-metadata tests: hangs for good on the partition-0 offsets listed
in PARAFKA_TEST_HANG_ON (comma-separated), and appends "partition offset" to PARAFKA_TEST_OUT
for every other record it finishes."""

import os
import time

from parafka import Record

OUT = os.environ["PARAFKA_TEST_OUT"]
HANG_ON = frozenset(int(o) for o in os.environ["PARAFKA_TEST_HANG_ON"].split(","))


def handle(record: Record) -> None:
    if record.partition == 0 and record.offset in HANG_ON:
        while True:  # until the test kills this process group
            time.sleep(1)
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{record.partition} {record.offset}\n".encode())
    finally:
        os.close(fd)
