"""Handlers that take about 1 ms and fail offset 5 on its first attempt (importable, so
process workers can load them by name)."""

from __future__ import annotations

import asyncio
import time

from parafka import Record


def handle(record: Record) -> None:
    time.sleep(0.001)
    if record.offset == 5 and record.attempt == 1:
        raise RuntimeError("fails once")


async def handle_async(record: Record) -> None:
    await asyncio.sleep(0.001)
    if record.offset == 5 and record.attempt == 1:
        raise RuntimeError("fails once")
