"""Thread affinity: what a thread started from a pinned thread gets (Linux).

The engine pins its control and output threads to one core (engine/placement.py). A thread
or process inherits the affinity of the thread that starts it, so what the control thread
starts once pinned (a client's threads, the stand-by thread of handover.py) is started
inside `unpinned()`, with the process's cores.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator

# The process's cores, as at import (before any thread of it was pinned).
CORES = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
TASK = "/proc/self/task/{}/"  # a thread's files, by its native id


def schedstat(thread_id: int) -> tuple[int, int]:
    """(ns the thread ran, ns it waited runnable for a core) so far (Linux). Raises OSError
    or ValueError where there are no such figures."""
    with open(TASK.format(thread_id) + "schedstat", encoding="ascii") as f:
        ran, waited, _ = f.read().split()
    return int(ran), int(waited)


def waited_for_core(thread_id: int) -> float | None:
    """Seconds the thread has waited, runnable, for a core so far (None: not readable).
    Waiting for a lock or the GIL is sleep, not this."""
    try:
        return schedstat(thread_id)[1] / 1e9
    except (OSError, ValueError):
        return None


def set_cores(thread_id: int, cores: Iterable[int]) -> bool:
    """Let the thread run on `cores` only; False if the system refused (or it has ended)."""
    try:
        os.sched_setaffinity(thread_id, cores)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Run the block with the process's cores: a thread (or a client's threads, or a
    process) started from a pinned thread inherits its one core, and must not."""
    me = threading.get_native_id()
    mine = os.sched_getaffinity(me) if CORES else CORES
    freed = mine != CORES and set_cores(me, CORES)
    try:
        yield
    finally:
        if freed:
            set_cores(me, mine)
