"""A handler for the CLI tests: raises ValueError("boom") for partition 0, offset 7."""

from parafka import Record


def handle(record: Record) -> None:
    if record.partition == 0 and record.offset == 7:
        raise ValueError("boom")
