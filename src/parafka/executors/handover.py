"""Handlers run on the control thread, and a stand-by thread that takes the loop over.

A handler that takes microseconds and holds the GIL gains nothing from worker threads: only
one thread runs Python at a time, and handing its records to a worker and back costs more
than the handler (measured in docs/architecture.md, "Handlers on the control thread"). The
thread executor then runs such chunks on the control thread itself, between two rounds of
the loop. What that must not cost is the loop's own promises: a handler that hangs there
would stop polls, commits, other keys and shutdown with it.

So while the control thread runs a chunk, a stand-by thread watches the clock. When one
chunk has run for `after` seconds, the stand-by takes the loop over: it becomes the control
thread from that point on (the loop is between two steps' worth of state: the control
thread only calls the handlers from `submit`, after which it touches nothing of the
loop's), the chunk's unstarted units go to worker threads, and every chunk from then on
runs on worker threads. The old control thread, if its handler ever returns, reports the
records it finished and leaves the loop by raising `HandedOver`. The hand-over is decided
under one lock, so exactly one of the two threads goes on as the control thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from parafka.core.errors import wire_name
from parafka.executors.affinity import unpinned
from parafka.executors.chunks import Chunk


@wire_name("parafka.executors.handover.HandedOver")
class HandedOver(Exception):  # not an error: control flow between two threads
    """Raised on the old control thread when its handler returns after the stand-by took
    the loop over; the loop's `run` waits for the new control thread to end the run."""


class StandBy:
    """The thread that takes the loop over when a chunk on the control thread runs long.

    `running(chunk)` before the control thread runs a chunk, `done()` after it (False: the
    loop was taken over meanwhile). `take_over(chunk)` runs on the stand-by thread, once.
    """

    def __init__(self, after: float, every: float, take_over: Callable[[Chunk], None]) -> None:
        self.after, self.every = after, every
        self._take_over = take_over
        self._lock = threading.Lock()
        self._chunk: Chunk | None = None  # the chunk the control thread runs, if any
        self._since = 0.0  # perf_counter when it started
        self.taken = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="parafka-standby", daemon=True)
        with unpinned():  # started by the control thread, it may become one (placement.py)
            self._thread.start()

    def running(self, chunk: Chunk) -> None:
        with self._lock:
            self._chunk, self._since = chunk, time.perf_counter()

    def done(self) -> bool:
        """The chunk ended; True if this thread is still the control thread."""
        with self._lock:
            self._chunk = None
            return not self.taken

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(self.every):
            with self._lock:
                since, chunk = self._since, self._chunk
                if chunk is None or time.perf_counter() - since < self.after:
                    continue
                self.taken = True
            self._take_over(chunk)
            return
