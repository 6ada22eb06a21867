"""Handlers that make a newcomer's mistakes (tests/integration/test_newcomer.py)."""

from __future__ import annotations

from parafka import Record


def subscript_int(record: Record) -> None:
    """Fails on every record: the data is not what the handler expects."""
    number = int(record.offset)
    number["field"]  # type: ignore[index]  # the mistake under test


def returns_output(record: Record) -> bytes:
    """Returns an output; run without --output-topic it has nowhere to go."""
    return record.value or b""


def two_arguments(record: Record, context: object) -> None:
    """The wrong signature: parafka calls a handler with one record."""
