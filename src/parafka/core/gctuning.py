"""Garbage-collector settings for a process whose job is to consume at full speed.

A consumer keeps thousands of records, outputs and their bookkeeping alive for a few
milliseconds each: they outlive the young generation and pile up in the old one, and
CPython's default thresholds (a young collection every 700 allocations) then spend a
large share of the time walking them. Measured on the md5 transform (one process, batch
handler; benchmarks/RESULTS.md): 7.3 µs of CPU per record with the defaults, 5.2 µs after
`tune_gc()`. Only cyclic garbage waits longer to be freed; reference counting frees the rest
at once as before.

`parafka run` calls it at start; a program that embeds ParallelConsumer in a process of
its own may call it too. It changes the whole interpreter, so a library never calls it on
its own.
"""

from __future__ import annotations

import gc
import time

YOUNG_THRESHOLD = 50_000  # allocations between two young collections (CPython: 700)


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Freeze what exists now (modules, settings: never collected again) and collect the
    young generation every `young_threshold` allocations. Returns the thresholds before,
    for `gc.set_threshold(*before)`. Never lowers a threshold already set higher."""
    before = gc.get_threshold()
    young, middle, old = before
    gc.freeze()
    gc.set_threshold(max(young, young_threshold), middle, old)
    return before


def tuned() -> bool:
    """Whether the young generation is collected as seldom as `tune_gc` sets (or less)."""
    return gc.get_threshold()[0] >= YOUNG_THRESHOLD


class GcTimer:
    """Adds up the time the interpreter spends in garbage collections (a `gc.callbacks`
    entry: one call at the start and one at the end of each collection, in whichever
    thread triggered it; the consumer's advice reads `total`)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
