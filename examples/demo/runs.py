"""Runs a scene compares (parafka, a baseline loop in a thread), started and stopped alike:
`play_run` runs one until it has done its records; `together` runs several at once (the quick
mode, where the figures do not matter and the group joins would dominate)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from examples.demo.view import Lane
from parafka import ParallelConsumer, Stats

_STOP_TIMEOUT = 60.0


class Run(Protocol):
    def start(self) -> None: ...

    def processed(self) -> int: ...

    def alive(self) -> bool: ...

    def stop(self) -> None:
        """End the run; raises what made it fail, if anything."""


class ParafkaRun:
    """A ParallelConsumer in a background thread.

    `rate` is measured from its stats snapshots (each says when it was taken): records
    done between the first snapshot that shows any and the last one read, over the time
    between them. For runs whose handlers cannot note times themselves (process workers).
    """

    def __init__(self, consumer: ParallelConsumer) -> None:
        self.consumer = consumer
        self.final: Stats | None = None
        self._first: tuple[int, float] | None = None  # (processed, snapshot time)
        self._last: tuple[int, float] | None = None

    def start(self) -> None:
        self.consumer.start()

    def processed(self) -> int:
        stats = self.consumer.stats()
        if stats.processed:
            if self._first is None:
                self._first = (stats.processed, stats.at)
            if self._last is None or stats.processed > self._last[0]:
                self._last = (stats.processed, stats.at)
        return stats.processed

    @property
    def rate(self) -> float:
        if self._first is None or self._last is None or self._last[1] <= self._first[1]:
            return float("nan")
        return (self._last[0] - self._first[0]) / (self._last[1] - self._first[1])

    def alive(self) -> bool:
        return self.consumer.is_running

    def stop(self) -> None:
        self.consumer.stop()
        self.final = self.consumer.join(_STOP_TIMEOUT)  # re-raises what stopped it
        if self.final is None:
            raise RuntimeError(f"parafka did not stop within {_STOP_TIMEOUT:.0f} s")


class ThreadRun:
    """A blocking loop (a baseline) in a thread; `processed` is read from its handler."""

    def __init__(self, loop: Callable[[], object], processed: Callable[[], int]) -> None:
        self._loop, self._processed = loop, processed
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-baseline", daemon=True)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # re-raised by stop()
            self._error = exc

    def start(self) -> None:
        self._thread.start()

    def processed(self) -> int:
        return self._processed()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"the loop did not end within {_STOP_TIMEOUT:.0f} s")
        if self._error is not None:
            raise self._error


def together(entries: Sequence[tuple[Lane, Run]], count: int, timeout: float) -> list[str | None]:
    """Start every run, stop each once it processed `count` records (or died, or `timeout`
    passed); returns per run None, or why it fell short."""
    for lane, run in entries:
        lane.status = "joining its group"
        run.start()
    deadline = time.monotonic() + timeout
    errors: list[str | None] = [None] * len(entries)
    pending = set(range(len(entries)))
    while pending:
        for index in sorted(pending):
            lane, run = entries[index]
            error = _step(lane, run, count, deadline, timeout)
            if error != _RUNNING:
                pending.discard(index)
                errors[index] = error
        time.sleep(0.02)
    return errors


def play_run(lane: Lane, run: Run, count: int, timeout: float) -> str | None:
    """Start `run`, stop it once it processed `count` records (or died, or `timeout`
    passed); returns None, or why it fell short."""
    lane.status = "joining its group"
    run.start()
    deadline = time.monotonic() + timeout
    while (error := _step(lane, run, count, deadline, timeout)) == _RUNNING:
        time.sleep(0.02)
    return error


_RUNNING = "running"


def _step(lane: Lane, run: Run, count: int, deadline: float, timeout: float) -> str | None:
    """Stop `run` if it is done, dead or out of time (returning None or why it fell
    short); otherwise return _RUNNING."""
    processed = run.processed()
    out_of_time = time.monotonic() > deadline
    if processed >= count or not run.alive() or out_of_time:
        lane.status = "stopping"
        return _stop(run, processed, count, timeout if out_of_time else None)
    if processed:
        lane.status = _RUNNING
    return _RUNNING


def _stop(run: Run, processed: int, count: int, timed_out: float | None) -> str | None:
    try:
        run.stop()
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"
    if processed >= count:
        return None
    if timed_out is not None:
        return f"only {processed:,} of {count:,} done after {timed_out:.0f} s"
    return f"stopped after {processed:,} of {count:,}"
