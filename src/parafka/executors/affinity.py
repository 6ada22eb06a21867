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
from collections.abc import Iterator

# The process's cores, as at import (before any thread of it was pinned).
_CORES = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Run the block with the process's cores: a thread (or a client's threads, or a
    process) started from a pinned thread inherits its one core, and must not."""
    me = threading.get_native_id()
    mine = os.sched_getaffinity(me) if _CORES else _CORES
    if mine == _CORES:
        yield
        return
    try:
        os.sched_setaffinity(me, _CORES)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(me, mine)
