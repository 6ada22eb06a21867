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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from parafka.core.deserializers import Decode, Deserializer, decode, resolve
from parafka.core.failures import remember_location
from parafka.core.outcomes import NOT_RUN, OneEach, Outcome
from parafka.core.record import Record, normalize_outputs
from parafka.core.scheduler import SHARD_FUNCTIONS
from parafka.executors.isolation import BatchRun

if TYPE_CHECKING:
    from parafka.core.stall import StuckPolicy
    from parafka.core.timings import ChunkTimings
    from parafka.observe.tracing import Mark

T = TypeVar("T")

Handler = Callable[..., Any]

__all__ = [
    "NOT_RUN",
    "ChunkResult",
    "Completions",
    "Executor",
    "Outcome",
    "TraceConfig",
    "Work",
    "fail_first",
    "run_chunk",
]


@dataclass(frozen=True)
class TraceConfig:
    """Tracing is on (tracing.py): what a span per attempt needs besides the record.
    Plain data: it travels to worker processes inside `Work`."""

    group_id: str


@dataclass(frozen=True)
class Work:
    """The user's handler and how to call it.

    `handler` is a callable, or a "module:function" / "path/file.py:function" target that a
    process executor loads in each worker. With `batch_size`, the handler takes a list of
    up to that many records and they succeed or fail together; its outputs belong to all
    of them; a failing batch is split until the failing records are isolated.
    """

    handler: Handler | str
    default_topic: str | None = None
    batch_size: int | None = None
    # Process workers produce outputs themselves with this producer configuration.
    producer_config: Mapping[str, Any] | None = None
    ordering: str = "key"  # which records a failure holds back (their shard)
    deserializer: Deserializer | None = None  # "text", "json", "module:fn" or a callable
    trace: TraceConfig | None = None  # set: a span per attempt (tracing.py)

    def decoder(self) -> Decode | None:
        """The value decoder to apply before the handler (None: raw bytes)."""
        return resolve(self.deserializer)

    def traced(self, handler: Any, sink: deque[Mark] | None, is_async: bool = False) -> Any:
        """The handler an executor runs: `handler` itself, or with tracing on, `handler`
        inside a span per attempt. Chosen once, at start: no per-record test."""
        if self.trace is None:
            return handler
        from parafka.observe.tracing import Attempts

        attempts = Attempts(self.trace, self.default_topic, sink)
        batch = self.batch_size is not None
        return attempts.wrap_async(handler, batch) if is_async else attempts.wrap(handler, batch)


class ChunkResult(NamedTuple):
    """The outcome of a chunk. `records` are what was run: the engine's entries when an
    executor reports (the records themselves from `run_chunk`). `outcomes` is None when
    every record is done with no output (the common case, kept cheap); otherwise it holds
    one item per record: None for "done, no output", NOT_RUN, or an Outcome. The records
    of a batch share one Outcome object carrying the batch's outputs."""

    records: Sequence[Any]
    outcomes: list[Outcome | None] | OneEach | None


def fail_first(records: Sequence[Any], error: BaseException) -> list[Outcome | None]:
    """Outcomes for a chunk whose run broke off with `error` before it could report
    (a handler raising SystemExit, say): the first record failed, the rest did not run."""
    return [(None, error), *[NOT_RUN] * (len(records) - 1)]


def run_chunk(
    handler: Handler, records: Sequence[Record], work: Work, decoder: Decode | None = None
) -> ChunkResult:
    """Call the handler on each record in order (or on the batch); stop at the first
    failure, reporting the records after it as not run. With a `decoder`, each record's
    value is decoded first (`Record.data`); a value that fails to decode fails its record."""
    if work.batch_size is not None:
        return _run_batch(handler, records, work, decoder)
    outcomes: list[Outcome | None] | None = None
    default_topic = work.default_topic
    for index, record in enumerate(records):
        try:
            if decoder is not None:
                record.data = decode(decoder, record.value)
            result = handler(record)
            if result is None:
                continue
            outcome: Outcome = (normalize_outputs(result, default_topic), None)
        except Exception as exc:
            remember_location(exc)  # newcomer: file:line survives the trip from a worker process
            outcome = (None, exc)
        if outcomes is None:
            outcomes = [None] * len(records)
        outcomes[index] = outcome
        if outcome[1] is not None:
            outcomes[index + 1 :] = [NOT_RUN] * (len(records) - index - 1)
            break
    return ChunkResult(records, outcomes)


def start_batch(records: Sequence[Record], work: Work, decoder: Decode | None) -> BatchRun:
    """A BatchRun for `records`, with the records whose value fails to decode set aside."""
    bad: dict[int, BaseException] = {}
    if decoder is not None:
        for index, record in enumerate(records):
            try:
                record.data = decode(decoder, record.value)
            except Exception as exc:
                bad[index] = exc
    batch = BatchRun(records, SHARD_FUNCTIONS.get(work.ordering))
    batch.start(bad)
    return batch


def _run_batch(
    handler: Handler, records: Sequence[Record], work: Work, decoder: Decode | None
) -> ChunkResult:
    batch = start_batch(records, work, decoder)
    while (members := batch.next_batch()) is not None:
        try:
            result = handler(members)
            outputs = None if result is None else normalize_outputs(result, work.default_topic)
        except Exception as exc:
            remember_location(exc)  # newcomer: file:line survives the trip from a worker process
            batch.failed(exc)
            continue
        batch.succeeded(outputs)
    return ChunkResult(records, batch.outcomes())


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
    # Set before start() with on_stuck other than "report" (the process executor acts on
    # it: stall.py); `stuck_replaced` counts the workers it replaced for a stuck record.
    stuck: StuckPolicy | None = None
    stuck_replaced: int = 0
    # Set by the control loop before each hand-over when concurrency="auto": the limit now.
    # An executor with more workers than that spreads a hand-over over this many only.
    active: int | None = None
    # Set by the control loop in partition order: how long a partition waits for its run's
    # outputs to be acknowledged before its next run may start (0: nothing waits). An
    # executor that sizes its chunks by time makes them long enough that the wait is a
    # small part of each cycle.
    ack_wait: float = 0.0
    # Set before start() by a consumer-group loop with tracing on: where sampled attempts
    # leave their marks for the control thread's "ack" and "commit" spans (tracing.py).
    traces: deque[Mark] | None = None

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
    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        """Run the handler on each record; the records of a run in order, on one worker
        (called from the control thread only). The records are the engine's entries, or
        the share loop's plain records: executors read only what a Record has."""

    @property
    def handler_seconds(self) -> float | None:
        """A handler's time per record as measured so far (None: not measured)."""
        return None

    @property
    def runs_here(self) -> bool:
        """Whether handlers run on the control thread now: no worker waits for records,
        the loop itself does."""
        return False

    def rescue(self) -> None:
        """Called by the control thread every round: an executor that can keep a hung
        handler from holding back other records does it here (threads.py)."""
        return None

    @abstractmethod
    def shutdown(self, timeout: float) -> bool:
        """Stop accepting work and wait up to `timeout` for running handlers.

        Returns False when some handler was still running at the deadline (it is
        abandoned; its record is not committed).
        """


def pack_runs(runs: Sequence[Sequence[T]], size: int) -> list[Sequence[T]]:
    """Chunks of about `size` records made of whole runs (a run is never split)."""
    chunks: list[Sequence[T]] = []
    chunk: list[T] = []
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
