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

        return ProcessExecutor(workers or os.cpu_count() or 1)
    raise ValueError(f"unknown executor {kind!r}")


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
]
