"""A handler for the stuck-record tests: hangs on partition 0, offset PARAFKA_TEST_HANG_AT
until the file PARAFKA_TEST_RELEASE exists (creating PARAFKA_TEST_RELEASE.hung as it starts
to hang); appends "partition offset" to PARAFKA_TEST_OUT
for every other record."""

import os
import time

from parafka import Record

OUT = os.environ["PARAFKA_TEST_OUT"]
HANG_AT = int(os.environ["PARAFKA_TEST_HANG_AT"])
RELEASE = os.environ["PARAFKA_TEST_RELEASE"]


def handle(record: Record) -> None:
    if record.partition == 0 and record.offset == HANG_AT:
        open(RELEASE + ".hung", "w").close()
        while not os.path.exists(RELEASE):
            time.sleep(0.05)
        return
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{record.partition} {record.offset}\n".encode())
    finally:
        os.close(fd)
