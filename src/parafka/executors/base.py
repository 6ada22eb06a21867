"""What every executor shares: the work it is given and how it reports back.

The control thread calls `Executor.submit()` with runs the scheduler released; the
executor runs the handler and puts one `ChunkResult` per chunk into the shared
`Completions` queue. Thread, asyncio and process executors implement the same interface;
the scheduler and the offset logic never see which one runs.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from parafka.record import Produced, Record, normalize_outputs

if TYPE_CHECKING:
    from parafka.timings import ChunkTimings

Handler = Callable[..., Any]

# What became of a record that did not simply succeed: its outputs, or its exception.
Outcome = tuple[list[Produced] | None, BaseException | None]
# A record that was handed over but not executed, because an earlier record of its chunk
# failed (a later record of the same key must not overtake the failed one).
NOT_RUN: Outcome = (None, None)


@dataclass(frozen=True)
class Work:
    """The user's handler and how to call it.

    `handler` is a callable, or a "module:function" / "path/file.py:function" target that a
    process executor loads in each worker. With `batch_size`, the handler takes a list of
    up to that many records and they succeed or fail together; its outputs belong to all
    of them.
    """

    handler: Handler | str
    default_topic: str | None = None
    batch_size: int | None = None
    # Process workers produce outputs themselves with this producer configuration.
    producer_config: Mapping[str, Any] | None = None


class ChunkResult(NamedTuple):
    """The outcome of a chunk of records. `outcomes` is None when every record is done
    with no output (the common case, kept cheap); otherwise it holds one entry per record:
    None for "done, no output", NOT_RUN, or an Outcome. For a batch handler the outputs
    sit on the batch's last record and the others are None."""

    records: list[Record]
    outcomes: list[Outcome | None] | None


def run_chunk(handler: Handler, records: list[Record], work: Work) -> ChunkResult:
    """Call the handler on each record in order (or once on the batch); stop at the first
    failure, reporting the records after it as not run."""
    if work.batch_size is not None:
        return _run_batch(handler, records, work)
    outcomes: list[Outcome | None] | None = None
    default_topic = work.default_topic
    for index, record in enumerate(records):
        try:
            result = handler(record)
            if result is None:
                continue
            outcome: Outcome = (normalize_outputs(result, default_topic), None)
        except Exception as exc:
            outcome = (None, exc)
        if outcomes is None:
            outcomes = [None] * len(records)
        outcomes[index] = outcome
        if outcome[1] is not None:
            outcomes[index + 1 :] = [NOT_RUN] * (len(records) - index - 1)
            break
    return ChunkResult(records, outcomes)


def _run_batch(handler: Handler, records: list[Record], work: Work) -> ChunkResult:
    try:
        result = handler(records)
        outputs = None if result is None else normalize_outputs(result, work.default_topic)
    except Exception as exc:
        return ChunkResult(records, [(None, exc)] * len(records))
    if not outputs:
        return ChunkResult(records, None)
    outcomes: list[Outcome | None] = [None] * len(records)
    outcomes[-1] = (outputs, None)
    return ChunkResult(records, outcomes)


class Completions:
    """A many-writers, one-reader queue of chunk results that can wake the control thread."""

    def __init__(self) -> None:
        self._items: deque[ChunkResult] = deque()
        self._wake = threading.Event()

    def put(self, result: ChunkResult) -> None:
        self._items.append(result)
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

    def drain(self) -> list[ChunkResult]:
        """Every chunk result put so far, oldest first."""
        items = self._items
        return [items.popleft() for _ in range(len(items))]

    def __len__(self) -> int:
        return len(self._items)


class Executor(ABC):
    """Runs handlers; reports every submitted record exactly once to `completions`,
    in chunk results."""

    # Set before start() when metrics are on: the executor reports each chunk's timing.
    timings: ChunkTimings | None = None

    @abstractmethod
    def start(self, work: Work, completions: Completions) -> None:
        """Get ready to run the work; outcomes go to `completions`."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many records the executor wants in hand at once (the dispatch window)."""

    @property
    @abstractmethod
    def run_length(self) -> int:
        """How many consecutive records of one shard are worth running as one unit."""

    @abstractmethod
    def submit(self, runs: list[list[Record]]) -> None:
        """Run the handler on each record; the records of a run in order, on one worker
        (called from the control thread only)."""

    @abstractmethod
    def shutdown(self, timeout: float) -> bool:
        """Stop accepting work and wait up to `timeout` for running handlers.

        Returns False when some handler was still running at the deadline (it is
        abandoned; its record is not committed).
        """


def pack_runs(runs: list[list[Record]], size: int) -> list[list[Record]]:
    """Chunks of about `size` records made of whole runs (a run is never split)."""
    chunks: list[list[Record]] = []
    chunk: list[Record] = []
    for run in runs:
        if chunk and len(chunk) + len(run) > size:
            chunks.append(chunk)
            chunk = []
        chunk.extend(run)
        if len(chunk) >= size:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    return chunks
