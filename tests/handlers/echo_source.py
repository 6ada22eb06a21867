"""A handler for the CLI tests: outputs where each record came from, after a short wait."""

import json
import time

from parafka import Record


def handle(record: Record) -> bytes:
    time.sleep(0.003)
    return json.dumps({"p": record.partition, "o": record.offset}).encode()
