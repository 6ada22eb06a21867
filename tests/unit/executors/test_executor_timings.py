"""Every executor feeds the handler-time and latency histograms, once per chunk."""

from __future__ import annotations

import time
from typing import Any

import pytest

from parafka.core.record import Record
from parafka.executors import Completions, Work, make_executor
from parafka.observe.metrics import new_timings
from tests.handlers import fail_offset_five
from tests.unit.entries import wrap_runs

HANDLERS: dict[str, Any] = {
    "thread": fail_offset_five.handle,
    "async": fail_offset_five.handle_async,
    "process": "tests.handlers.fail_offset_five:handle",
}


@pytest.mark.parametrize("kind", ["thread", "async", "process"])
def test_executors_feed_chunk_timings(kind: str) -> None:
    stamp = int(time.time() * 1000) - 2000  # produced two seconds ago
    records = [Record("t", 0, o, b"k", timestamp=stamp) for o in range(10)]
    executor = make_executor(kind, 4, workers=1)
    executor.timings = timings = new_timings()
    completions = Completions()
    executor.start(Work(HANDLERS[kind]), completions)
    try:
        executor.submit(
            wrap_runs([records[:5], records[5:]])
        )  # two runs: the second fails at its head
        reported = 0
        deadline = time.monotonic() + 30
        while reported < 10 and time.monotonic() < deadline:
            completions.wait(0.1)
            reported += sum(len(chunk.records) for chunk in completions.drain())
        assert reported == 10
    finally:
        executor.shutdown(5.0)
    handler, latency = timings.handler.snapshot(), timings.latency.snapshot()
    # Offsets 0-5 ran; 6-9 were not run after 5 failed (in its run or its chunk).
    assert handler.count == 6 and handler.total > 0
    assert latency.count == handler.count
    assert latency.total / latency.count >= 2.0
