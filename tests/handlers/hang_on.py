"""A handler for the commit-metadata tests: hangs for good on the partition-0 offsets listed
in PARAFKA_TEST_HANG_ON (comma-separated), waits until the file PARAFKA_TEST_RELEASE exists
on those in PARAFKA_TEST_HOLD_ON; every other record sleeps PARAFKA_TEST_SLEEP_MS
milliseconds (default 0). Each record that ends appends "partition offset" to
PARAFKA_TEST_OUT."""

import os
import time

from parafka import Record

OUT = os.environ["PARAFKA_TEST_OUT"]
HANG_ON = frozenset(int(o) for o in os.environ["PARAFKA_TEST_HANG_ON"].split(","))
HOLD_ON = frozenset(int(o) for o in os.environ.get("PARAFKA_TEST_HOLD_ON", "").split(",") if o)
RELEASE = os.environ.get("PARAFKA_TEST_RELEASE", "")
SLEEP = float(os.environ.get("PARAFKA_TEST_SLEEP_MS", "0")) / 1000


def handle(record: Record) -> None:
    if record.partition == 0 and record.offset in HANG_ON:
        while True:  # until the test kills this process group
            time.sleep(1)
    if record.partition == 0 and record.offset in HOLD_ON:
        while not os.path.exists(RELEASE):  # the test creates it
            time.sleep(0.01)
    elif SLEEP:
        time.sleep(SLEEP)
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{record.partition} {record.offset}\n".encode())
    finally:
        os.close(fd)
