"""A handler for the exactly-once kill test on Apache Kafka: four outputs of about 1 KB per
record, each naming its source and its index, so a transaction's produce burst lasts long
enough (hundreds of ms) for a kill to land inside it."""

import json
import time

from parafka import Record

OUTPUTS = 4
PAD = "x" * 1000


def handle(record: Record) -> list[bytes]:
    time.sleep(0.003)
    return [
        json.dumps({"p": record.partition, "o": record.offset, "i": i, "pad": PAD}).encode()
        for i in range(OUTPUTS)
    ]
