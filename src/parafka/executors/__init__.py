"""Executors: where handlers run (threads, asyncio, processes)."""

import os

from parafka.executors.base import (
    NOT_RUN,
    ChunkResult,
    Completions,
    Executor,
    Handler,
    Outcome,
    Work,
    pack_runs,
    run_chunk,
)
from parafka.executors.threads import ThreadExecutor


def make_executor(kind: str, concurrency: int, workers: int | None = None) -> Executor:
    """The executor named `kind`: "thread", "async" or "process"."""
    if kind == "thread":
        return ThreadExecutor(concurrency)
    if kind == "async":
        from parafka.executors.aio import AsyncExecutor

        return AsyncExecutor(concurrency)
    if kind == "process":
        from parafka.executors.processes import ProcessExecutor

        return ProcessExecutor(workers or usable_cores())
    raise ValueError(f"unknown executor {kind!r}")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system tells it (a
    container's or `taskset`'s limit counts), else the machine's core count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity call here (macOS, Windows)
        return os.cpu_count() or 1


__all__ = [
    "NOT_RUN",
    "ChunkResult",
    "Completions",
    "Executor",
    "Handler",
    "Outcome",
    "ThreadExecutor",
    "Work",
    "make_executor",
    "pack_runs",
    "run_chunk",
    "usable_cores",
]
