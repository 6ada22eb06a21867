"""Executors run the user's handler away from the control thread and report outcomes.

The control thread calls `submit()` with records the scheduler released; the executor
runs the handler and puts one `Completion` per record into the shared `Completions`
queue. Process and asyncio executors implement the same interface (issue: executors);
the scheduler and the offset logic never see which one runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from parafka.record import Produced, Record, normalize_outputs

log = logging.getLogger("parafka.executor")

Handler = Callable[[Record], Any]


class Completion(NamedTuple):
    """What became of one record: its outputs, or the exception its handler raised."""

    record: Record
    outputs: list[Produced] | None
    error: BaseException | None


def run_handler(handler: Handler, record: Record, default_topic: str | None) -> Completion:
    """Call the handler on one record and turn the outcome into a Completion."""
    try:
        result = handler(record)
        outputs = None if result is None else normalize_outputs(result, default_topic)
    except Exception as exc:
        return Completion(record, None, exc)
    return Completion(record, outputs, None)


class Completions:
    """A many-writers, one-reader queue of completions that can wake the control thread."""

    def __init__(self) -> None:
        self._items: deque[Completion] = deque()
        self._wake = threading.Event()

    def put(self, completion: Completion) -> None:
        self._items.append(completion)
        if not self._wake.is_set():
            self._wake.set()

    def wake(self) -> None:
        """Wake the control thread without a completion (for example to stop)."""
        self._wake.set()

    def wait(self, timeout: float) -> None:
        """Block until a completion arrives or `timeout` seconds pass."""
        if not self._items and timeout > 0:
            self._wake.wait(timeout)
        self._wake.clear()

    def drain(self) -> list[Completion]:
        items, taken = self._items, []
        while items:
            taken.append(items.popleft())
        return taken

    def __len__(self) -> int:
        return len(self._items)


class Executor(ABC):
    """Runs handlers; reports every submitted record exactly once to `completions`."""

    @abstractmethod
    def start(self, handler: Handler, completions: Completions, default_topic: str | None) -> None:
        """Get ready to run `handler`; outcomes go to `completions`."""

    @abstractmethod
    def submit(self, records: list[Record]) -> None:
        """Run the handler on each record (called from the control thread only)."""

    @abstractmethod
    def shutdown(self, timeout: float) -> bool:
        """Stop accepting work and wait up to `timeout` for running handlers.

        Returns False when some handler was still running at the deadline (it is
        abandoned; its record is not committed).
        """


class ThreadExecutor(Executor):
    """A fixed pool of worker threads, for handlers that wait on I/O."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self, handler: Handler, completions: Completions, default_topic: str | None) -> None:
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work,
                args=(handler, completions, default_topic),
                name=f"parafka-worker-{number}",
                daemon=True,  # a handler stuck forever must not keep the process alive
            )
            thread.start()
            self._threads.append(thread)

    def _work(self, handler: Handler, completions: Completions, topic: str | None) -> None:
        get, put = self._queue.get, completions.put
        while (record := get()) is not None:
            put(run_handler(handler, record, topic))

    def submit(self, records: list[Record]) -> None:
        put = self._queue.put
        for record in records:
            put(record)

    def shutdown(self, timeout: float) -> bool:
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        if alive:
            log.warning("%d handler thread(s) still running at shutdown; abandoned", len(alive))
        return not alive
