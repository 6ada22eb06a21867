"""The process executor: handlers run in worker processes, for CPU-bound work.

One consumer in the parent keeps the scheduler and the offsets; worker processes only
run the handler. Records travel in chunks of compact tuples (one pipe message per chunk,
never per record) and outcomes come back the same way. Outputs are produced by the
workers themselves (each has its own producer), which keeps that cost off the parent:
a worker reports a chunk only once every output of it is acknowledged, so a record is
still done only when its outputs are delivered.

Each worker slot has a sender thread (so a full pipe never blocks the control thread)
and a receiver thread. A worker that dies is replaced; the records it had in hand are
reported as failed with `WorkerDied`, so they are retried like any failure: nothing is
lost, and a record that kills its worker every time ends in `RecordFailed`.

Workers are started with the "spawn" method (forking a process that runs librdkafka
threads is unsafe), so the handler must be importable: a "module:function" target, or a
module-level function.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from parafka.core.errors import RecordParked, RecordStuck, wire_name
from parafka.core.gctuning import tune_gc
from parafka.core.outcomes import per_record_outcomes
from parafka.core.record import Produced, Record
from parafka.core.scheduler import SHARD_FUNCTIONS
from parafka.core.seam import ClientError
from parafka.core.stall import StallWatch
from parafka.executors.base import (
    NOT_RUN,
    ChunkResult,
    Completions,
    Executor,
    Outcome,
    Work,
    fail_first,
    pack_runs,
    run_chunk,
)
from parafka.executors.chunks import HANG_AFTER, RESCUE_EVERY, Chunk, run_units

log = logging.getLogger(__name__)

# In place of a chunk's run time, from a worker's watchdog (_watch): EARLY reports part of
# a chunk whose handler hangs; RETURNED gives back a whole chunk it had not started.
EARLY = -1.0
RETURNED = -2.0

Row = tuple[str, int, int, bytes | None, bytes | None, Any, int | None, int]


@wire_name("parafka.executors.processes.WorkerDied")
class WorkerDied(RuntimeError):
    """The worker process running a record exited before reporting it."""


def died_outcomes(
    size: int, chunk_id: int, running: tuple[int, int], error: BaseException
) -> list[Outcome | None]:
    """Outcomes of a chunk of `size` records whose worker died. `running` is what the
    worker last wrote: (chunk id, handler calls in it). Only the record it was running
    is charged an attempt; the chunk's other records go back unrun (those it had finished
    run again: their results died with it). A batch handler is one call for the whole
    chunk, so a batch that kills its worker charges all its records. A death outside the
    chunk's handler calls (say, while flushing outputs) charges nobody."""
    current, calls = running
    if size == 1 or (current == chunk_id and calls == 0):
        return [(None, error)] * size
    if current != chunk_id or not 1 <= calls <= size:
        return [NOT_RUN] * size
    blamed = calls - 1
    outcomes: list[Outcome | None] = [NOT_RUN] * size
    outcomes[blamed] = (None, error)
    return outcomes


def _row(record: Record) -> Row:
    return (
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.headers,
        record.timestamp,
        record.attempt,
    )


def _portable(outcomes: list[Outcome | None] | None) -> list[Outcome | None] | None:
    """Outcomes safe to send to the parent: an exception that cannot be pickled becomes
    a RuntimeError carrying its type name and message."""
    if outcomes is None:
        return None
    return [
        (None, _portable_error(o[1])) if o is not None and o[1] is not None else o for o in outcomes
    ]


class _WorkerOutputs:
    """In a worker: produces the outputs of each chunk and holds the chunk's result back
    until its outputs are acknowledged, so that "done" still means "outputs delivered".

    No per-message callback: the producer reports only failed deliveries, and a flush
    (when no other chunk is waiting, or a few chunks are pending) settles every pending
    chunk at once. A failed delivery fails every record with outputs among the chunks
    pending at that flush (retried: duplicates downstream, never a loss).
    """

    MAX_PENDING = 4  # chunks produced but not flushed

    def __init__(self, config: dict[str, Any]) -> None:
        from parafka.kafka.confluent import ConfluentKafka

        self.errors: list[BaseException] = []
        self.producer = ConfluentKafka().producer(config, on_failed=self._failed)
        self.pending: list[_PendingChunk] = []

    def _failed(self, err: ClientError, _topic: str, _key: Any, _value: Any) -> None:
        self.errors.append(_portable_error(err))

    def send(self, chunk: _PendingChunk) -> None:
        """Produce the chunk's outputs; remember which records had some."""
        assert chunk.outcomes is not None
        # The records of a batch share one output list: produce it once, fail them all
        # if the client refuses it.
        refused: dict[int, BaseException | None] = {}
        for index, outcome in enumerate(chunk.outcomes):
            if outcome is None or outcome == NOT_RUN or not outcome[0]:
                continue
            chunk.with_outputs.append(index)
            group = id(outcome[0])
            if group not in refused:
                refused[group] = self._produce(outcome[0])
            error = refused[group]
            chunk.outcomes[index] = None if error is None else (None, error)
        self.pending.append(chunk)

    def _produce(self, outputs: list[Produced]) -> BaseException | None:
        """Hand the outputs to the producer; the client's refusal, if any."""
        produce, poll = self.producer.produce, self.producer.poll
        for topic, value, key, headers in outputs:
            while True:
                try:
                    produce(topic, value, key, headers)
                    break
                except BufferError:
                    poll(0.05)
                except Exception as exc:  # refused by the client: fail the record
                    return _portable_error(exc)
        return None

    def due(self, more_waiting: bool) -> bool:
        return bool(self.pending) and (not more_waiting or len(self.pending) >= self.MAX_PENDING)

    def settle(self, conn: Connection) -> None:
        """Wait for every pending output, then report the pending chunks."""
        while self.producer.flush(10.0):  # every delivery ends (message.timeout.ms bounds it)
            pass
        error = self.errors[0] if self.errors else None
        self.errors.clear()
        for chunk in self.pending:
            assert chunk.outcomes is not None
            if error is not None:
                for index in chunk.with_outputs:
                    chunk.outcomes[index] = (None, error)
            # All done with nothing to report: send None, the parent's cheap path.
            outcomes = None if all(o is None for o in chunk.outcomes) else chunk.outcomes
            report: tuple[Any, ...] = (chunk.chunk_id, outcomes, chunk.seconds, chunk.positions)
            if chunk.marks:  # tracing: the outputs are acknowledged now
                acked = time.time_ns()
                report += ([m._replace(acked=acked) if m.outputs else m for m in chunk.marks],)
            conn.send(report)
        self.pending = []


class _PendingChunk:
    __slots__ = ("chunk_id", "marks", "outcomes", "positions", "seconds", "with_outputs")

    def __init__(
        self,
        chunk_id: int,
        outcomes: list[Outcome | None],
        seconds: float,
        positions: list[int] | None = None,
        marks: list[Any] | None = None,
    ) -> None:
        self.chunk_id, self.outcomes, self.seconds = chunk_id, outcomes, seconds
        self.positions = positions  # the records reported, when not the whole chunk
        self.with_outputs: list[int] = []
        self.marks = marks  # tracing: the sampled attempts' marks (tracing.Mark)


def _portable_error(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))  # some exceptions only fail to load
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


class _Running:
    """In a worker: the chunk its main thread runs, as the hang watchdog sees it."""

    __slots__ = ("chunk", "chunk_id", "reported", "size", "split", "unordered")

    def __init__(self, chunk_id: int, chunk: Chunk, size: int, unordered: bool) -> None:
        self.chunk_id, self.chunk, self.size, self.unordered = chunk_id, chunk, size, unordered
        self.split = False  # reported in part by the watchdog
        self.reported: set[int] = set()  # positions in the chunk reported early


def _watch(
    state: list[_Running | None],
    progress: Any,
    conn: Connection,
    locks: tuple[threading.Lock, threading.Lock],
    stash: deque[Any],
    mean: list[float],
) -> None:
    """A worker's watchdog thread. When one handler call runs longer than HANG_AFTER (or
    ten times the handler's mean time per record, for handlers that are slow by nature) it
    reports the chunk's records finished with nothing to produce, gives back the units
    not started (NOT_RUN: the parent's ledger queues them again, for other workers), and
    keeps giving back the chunks that arrive in the pipe meanwhile, so a hung record
    holds back only its own run. Records with outputs or failures wait for the chunk's
    final report, as before."""
    send_lock, recv_lock = locks
    seen, since = None, 0.0
    while True:
        time.sleep(RESCUE_EVERY)
        running, now = state[0], time.monotonic()
        mark = None if running is None else (running.chunk_id, int(progress[1]))
        if mark != seen:
            seen, since = mark, now
            continue
        if running is None or now - since < max(HANG_AFTER, 10 * mean[0]):
            continue
        with send_lock:
            if state[0] is not running:
                continue  # it ended meanwhile
            if not running.split:
                _split(running, conn)
        if recv_lock.acquire(blocking=False):  # the main thread is not reading the pipe
            try:
                while conn.poll(0):
                    message = conn.recv()
                    if message is None:  # told to stop: for the main thread
                        stash.append(message)
                        break
                    chunk_id, rows = message[0], message[1]
                    with send_lock:
                        conn.send((chunk_id, [NOT_RUN] * len(rows), RETURNED, None))
            except (EOFError, OSError, ValueError):
                return
            finally:
                recv_lock.release()


def _split(running: _Running, conn: Connection) -> None:
    """Report what the hung chunk finished with nothing to produce, and give back what it
    has not started."""
    chunk = running.chunk
    stolen = chunk.steal()
    # The count before the outcomes: the worker appends a record's outcome before the
    # record, so every record counted has its outcome in the list read after (read the
    # other way round, a record with outputs finishing in between looked bare).
    finished = len(chunk.done)
    outcomes = chunk.outcomes
    ready = [i for i in range(finished) if outcomes is None or outcomes[i] is None]
    count = len(stolen) if running.unordered else sum(len(unit) for unit in stolen)
    positions = ready + list(range(running.size - count, running.size))
    running.split = True
    running.reported.update(positions)
    if positions:
        report = [None] * len(ready) + [NOT_RUN] * count
        with contextlib.suppress(OSError, ValueError):
            conn.send((running.chunk_id, report, EARLY, positions))


def _worker_main(work: Work, conn: Connection, progress: Any = None) -> None:
    """A worker process: run chunks until told to stop (None) or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    handler = work.handler
    if isinstance(handler, str):
        from parafka.core.loader import load_target

        handler = load_target(handler)
    marks: list[Any] | None = None  # tracing: sampled attempts, sent with each report
    if work.trace is not None:
        marks = []
        handler = work.traced(handler, marks)  # type: ignore[arg-type]  # a list will do
    per_record = work.batch_size is None  # run_units counts handler calls in `progress`
    decoder = work.decoder()
    outputs = _WorkerOutputs(dict(work.producer_config)) if work.producer_config else None
    tune_gc()  # a worker process is parafka's own: collect garbage less often
    clock = time.perf_counter
    unordered = work.ordering == "unordered"
    shard_of = SHARD_FUNCTIONS.get(work.ordering)
    lock, recv_lock = threading.Lock(), threading.Lock()  # one sender, one reader at a time
    state: list[_Running | None] = [None]
    stash: deque[Any] = deque()  # what the watchdog read from the pipe for this thread
    mean = [0.0]  # the handler's time per record, as measured so far (for the watchdog)
    if progress is not None and per_record:
        watchdog = threading.Thread(
            target=_watch,
            args=(state, progress, conn, (lock, recv_lock), stash, mean),
            name="watchdog",
            daemon=True,
        )
        watchdog.start()
    while True:
        try:
            if outputs is not None and outputs.due(more_waiting=bool(stash) or conn.poll(0)):
                with lock:
                    outputs.settle(conn)
            with recv_lock:
                message = stash.popleft() if stash else conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            break
        chunk_id, rows = message[0], message[1]
        records = [Record(*row) for row in rows] if len(message) == 2 else _received(message)
        if progress is not None:
            progress[0], progress[1] = chunk_id, 0
        started = clock()
        positions: list[int] | None = None
        if per_record:
            units = deque(records) if unordered else _runs(records, shard_of)
            # each=False: this worker produces its chunk's outputs record by record
            running = _Running(chunk_id, Chunk(units, each=False), len(records), unordered)
            state[0] = running
            try:
                run_units(handler, running.chunk, work, decoder, unordered, progress)
            finally:
                with lock:
                    state[0] = None
            done, outcomes = running.chunk.done, running.chunk.outcomes
            if running.split:  # reported in part already: the rest, by position
                positions = [i for i in range(len(done)) if i not in running.reported]
                outcomes = [None if outcomes is None else outcomes[i] for i in positions]
        else:
            try:
                outcomes = per_record_outcomes(run_chunk(handler, records, work, decoder).outcomes)
            except BaseException as exc:  # SystemExit/KeyboardInterrupt from a handler
                outcomes = fail_first(records, exc)
        seconds = clock() - started
        if records:
            mean[0] += 0.2 * (seconds / len(records) - mean[0])
        if progress is not None:
            progress[0] = -1
        outcomes = _portable(outcomes)
        traced = None
        if marks:  # tracing: the sampled attempts' marks go with the report (a 5th item)
            traced, marks[:] = marks[:], []
        if outputs is not None and outcomes is not None:
            outputs.send(_PendingChunk(chunk_id, outcomes, seconds, positions, traced))
        else:
            report = (chunk_id, outcomes, seconds, positions)
            with lock:
                conn.send(report if traced is None else (*report, traced))
    if outputs is not None:  # stopping: deliver what is in hand, then report it
        with lock:
            outputs.settle(conn)


def _received(message: tuple[int, list[Row], list[float]]) -> list[Record]:
    """Tracing: the chunk's records with the parent's receive times (the queue wait)."""
    from parafka.observe.tracing import Received

    records: list[Record] = []
    for row, received in zip(message[1], message[2], strict=True):
        record = Received(*row)
        record.received = received
        records.append(record)
    return records


def _runs(records: list[Record], shard_of: Any) -> deque[Any]:
    """The chunk's runs (consecutive records of one shard): they go in order on one worker."""
    return deque(list(run) for _, run in itertools.groupby(records, shard_of))


class _Slot:
    """One worker process with its pipe, its sender and its receiver thread."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.lock = threading.Lock()
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.outstanding: dict[int, Sequence[Record]] = {}
        self.reported: dict[int, set[int]] = {}  # chunk -> positions its watchdog reported
        self.hung = False  # its watchdog reported a hung handler: send it nothing new
        # (chunk id, handler calls so far in it), written by the worker, read at its death
        self.progress: Any = None
        self.load = 0  # records handed to this worker and not reported
        self.inbox: queue.SimpleQueue[tuple[int, Sequence[Record]] | None] = queue.SimpleQueue()
        self.started_at = 0.0
        self.quick_deaths = 0
        self.up = threading.Event()  # set while a live worker is attached
        self.stuck = False  # killed by the watchdog: its record was stuck (stall.py)


class ProcessExecutor(Executor):
    """Worker processes running the handler on chunks of records."""

    CHUNK_SECONDS = 0.01  # aim for chunks that take about this long in a worker
    MAX_CHUNK = 2000

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(n) for n in range(workers)]
        self._ids = itertools.count()
        self._work: Work | None = None
        self._completions: Completions | None = None
        self._stopping = False
        self._mean_seconds = 0.001
        self._threads: list[threading.Thread] = []
        self._traced = False

    # -- sizing -------------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        if self._work is not None and self._work.batch_size is not None:
            return self._work.batch_size
        per_record = max(self._mean_seconds, 1e-7)
        return max(1, min(self.MAX_CHUNK, int(self.CHUNK_SECONDS / per_record)))

    @property
    def run_length(self) -> int:
        return self.chunk_size

    @property
    def capacity(self) -> int:
        """Two chunks per worker: one running, one waiting in its pipe."""
        return self.workers * 2 * self.chunk_size

    # -- life cycle ---------------------------------------------------------------------
    def start(self, work: Work, completions: Completions) -> None:
        self._work, self._completions = work, completions
        self._traced = work.trace is not None
        for slot in self._slots:
            self._spawn(slot)
            for target, name in ((self._send, "send"), (self._receive, "receive")):
                thread = threading.Thread(
                    target=target, args=(slot,), name=f"parafka-{name}-{slot.number}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        if self.stuck is not None and self.stuck.acts:
            watchdog = threading.Thread(target=self._watch, name="parafka-stall", daemon=True)
            watchdog.start()
            self._threads.append(watchdog)

    def _watch(self) -> None:
        """Kill a worker whose record has run longer than stuck_after (on_stuck); its
        receiver then reports the record (RecordStuck or RecordParked) and replaces it."""
        assert self.stuck is not None
        watch = StallWatch(self.stuck.after)
        pause = min(1.0, self.stuck.after / 4)
        while not self._stopping:
            time.sleep(pause)
            now = time.monotonic()
            for slot in self._slots:
                progress = slot.progress
                if not slot.up.is_set() or progress is None or slot.stuck:
                    watch.forget(slot.number)
                    continue
                if watch.hung(slot.number, (int(progress[0]), int(progress[1])), now):
                    log.warning(
                        "worker %d: a record has run over %g s (--stuck-after); replacing the "
                        "worker (--on-stuck %s)",
                        slot.number,
                        self.stuck.after,
                        self.stuck.action,
                    )
                    slot.stuck = True
                    self.stuck_replaced += 1
                    watch.forget(slot.number)
                    self._stop_worker(slot)

    def _spawn(self, slot: _Slot) -> None:
        parent_end, child_end = self._context.Pipe(duplex=True)
        slot.progress = self._context.RawArray("q", [-1, 0])
        process = self._context.Process(
            target=_worker_main,
            args=(self._work, child_end, slot.progress),
            name=f"parafka-worker-{slot.number}",
            daemon=True,
        )
        process.start()
        child_end.close()
        slot.process, slot.conn = process, parent_end
        slot.started_at = time.monotonic()
        slot.hung = False
        slot.up.set()

    def submit(self, runs: Sequence[Sequence[Record]]) -> None:
        size = self.chunk_size
        if self._work is not None and self._work.batch_size is None:
            total = sum(len(run) for run in runs)
            workers = min(self.workers, self.active or self.workers)
            size = min(size, -(-total // workers))  # spread over the workers
        for chunk in pack_runs(runs, size):
            slot = min(self._slots, key=lambda s: (not s.up.is_set(), s.hung, s.load))
            with slot.lock:
                slot.load += len(chunk)
            slot.inbox.put((next(self._ids), chunk))

    def shutdown(self, timeout: float) -> bool:
        self._stopping = True
        for slot in self._slots:
            slot.inbox.put(None)
        deadline = time.monotonic() + timeout
        clean = True
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            # join() can return as soon as the child closes its end of the sentinel pipe,
            # a moment before the exit can be reaped: keep joining until the deadline.
            while process.is_alive() and time.monotonic() < deadline:
                process.join(min(0.05, max(0.0, deadline - time.monotonic())))
            if process.is_alive():
                clean = False
                process.terminate()
                process.join(1.0)
                if process.is_alive():
                    process.kill()
                    process.join(1.0)
        if not clean:
            log.warning("worker process(es) still running at shutdown were stopped")
        return clean

    # -- per-slot threads ---------------------------------------------------------------
    def _send(self, slot: _Slot) -> None:
        while (item := slot.inbox.get()) is not None:
            chunk_id, records = item
            rows = [_row(entry) for entry in records]
            while not slot.up.wait(1.0) and not self._stopping:
                pass  # its worker is being replaced
            with slot.lock:
                conn = slot.conn
                slot.outstanding[chunk_id] = records
            try:
                assert conn is not None
                if self._traced:  # the receive times travel for the queue wait
                    received = [getattr(entry, "received", 0.0) for entry in records]
                    conn.send((chunk_id, rows, received))
                else:
                    conn.send((chunk_id, rows))
            except (OSError, ValueError):  # the worker died; the receiver replaces it
                self._fail_chunk(slot, chunk_id)
        with slot.lock:
            conn = slot.conn
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)

    def _receive(self, slot: _Slot) -> None:
        assert self._completions is not None
        put = self._completions.put
        while True:
            conn = slot.conn
            try:
                assert conn is not None
                reply = conn.recv()
                chunk_id, outcomes, seconds, positions = reply[:4]
            except Exception as exc:  # the pipe broke, or a result could not be read
                if not isinstance(exc, EOFError | OSError | ValueError):
                    log.warning(
                        "worker %d sent what cannot be read (%s); replacing it", slot.number, exc
                    )
                    self._stop_worker(slot)
                if not self._worker_died(slot):
                    return
                continue
            partial = seconds == EARLY  # the watchdog's report of part of a chunk
            with slot.lock:
                records = slot.outstanding.get(chunk_id)
                if records is not None and positions is not None:
                    records = [records[i] for i in positions]
                    if partial:
                        slot.reported.setdefault(chunk_id, set()).update(positions)
                if records is not None and not partial:
                    del slot.outstanding[chunk_id]
                    slot.reported.pop(chunk_id, None)
                if records is not None:
                    slot.load -= len(records)
            if len(reply) > 4 and self.traces is not None:  # tracing's marks, before the chunk
                self.traces.extend(reply[4])
            if not records:
                continue
            slot.hung = partial or (slot.hung and seconds == RETURNED)
            if seconds >= 0:
                self._mean_seconds += 0.2 * (seconds / len(records) - self._mean_seconds)
                if self.timings is not None:
                    self.timings.chunk(records, seconds, outcomes)
            put(ChunkResult(records, outcomes))

    def _worker_died(self, slot: _Slot) -> bool:
        """Fail what the dead worker had in hand; replace it unless stopping. Returns
        whether the receiver should keep going."""
        slot.up.clear()
        process = slot.process
        code = None
        if process is not None:
            process.join(1.0)
            code = process.exitcode
        with slot.lock:
            lost = list(slot.outstanding)
        running = (int(slot.progress[0]), int(slot.progress[1])) if slot.progress else (-1, 0)
        stuck, slot.stuck = slot.stuck, False
        error: BaseException | None = None
        if stuck:
            assert self.stuck is not None
            kind = RecordParked if self.stuck.action == "park" else RecordStuck
            error = kind(
                f"ran over {self.stuck.after:g} s (--stuck-after) in worker process "
                f"{slot.number}, which was replaced (--on-stuck {self.stuck.action})"
            )
        for chunk_id in lost:
            self._fail_chunk(slot, chunk_id, code, running, error)
        if self._stopping:
            return False
        # A worker that dies right after starting (a broken import, say) is restarted
        # with a growing pause instead of in a tight loop (not one replaced for a stall).
        lived = time.monotonic() - slot.started_at
        slot.quick_deaths = slot.quick_deaths + 1 if lived < 5.0 and not stuck else 0
        pause = min(10.0, 0.1 * 2**slot.quick_deaths) if slot.quick_deaths else 0.0
        log.warning(
            "worker %d exited (code %s); starting a new one in %.1f s", slot.number, code, pause
        )
        time.sleep(pause)
        if self._stopping:
            return False
        with slot.lock:
            self._spawn(slot)
        return True

    def _fail_chunk(
        self,
        slot: _Slot,
        chunk_id: int,
        code: int | None = None,
        running: tuple[int, int] = (-1, 0),
        error: BaseException | None = None,
    ) -> None:
        """Report a chunk its worker never reported: the record it was running (if it
        was running one) failed with `error` (WorkerDied); the others go back unrun."""
        with slot.lock:
            records = slot.outstanding.pop(chunk_id, None)
            reported = slot.reported.pop(chunk_id, set())
            if records is not None:
                slot.load -= len(records) - len(reported)
        if records is None or self._completions is None:
            return
        if error is None:
            error = WorkerDied(
                f"worker process {slot.number} exited (code {code}) while running it"
            )
        outcomes = died_outcomes(len(records), chunk_id, running, error)
        if reported:  # the watchdog reported these before the worker died
            keep = [i for i in range(len(records)) if i not in reported]
            records, outcomes = [records[i] for i in keep], [outcomes[i] for i in keep]
        self._completions.put(ChunkResult(records, outcomes))

    @staticmethod
    def _stop_worker(slot: _Slot) -> None:
        process = slot.process
        if process is not None and process.is_alive():
            process.kill()
