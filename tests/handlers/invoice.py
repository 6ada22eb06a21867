"""Handlers for the simulator's user-facing tests: one invoice per order (per record and
per batch)."""

from __future__ import annotations

from parafka import Output, Record


def handle(record: Record) -> Output:
    return Output({"invoice_for": (record.value or b"").decode()}, key=record.key)


def handle_batch(records: list[Record]) -> list[Output]:
    return [handle(record) for record in records]
