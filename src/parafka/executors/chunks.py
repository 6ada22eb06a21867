"""Chunks a worker thread runs, which the control thread can split while a handler hangs.

A chunk holds *units*: runs of one shard (key and partition order: a run's records go in
order on one worker), or single records (unordered). The worker takes one unit at a time
from the left (`deque.popleft` is atomic) and appends each record it finished to `done`.
If a handler hangs, the records before it are done and those after it wait: the control
thread then reports the finished records at once (`take_done`) and hands the units nobody
took yet to other workers (`steal`), so a hung record holds back only its own shard.
Without a hang neither happens, and a chunk costs what a list of records did: one append
per record and one report per chunk.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from parafka.core.deserializers import Decode, decode
from parafka.core.failures import remember_location
from parafka.core.outcomes import NOT_RUN, OneEach, Outcome, per_record_outcomes
from parafka.core.record import Record, normalize_outputs, plain_output
from parafka.executors.base import ChunkResult, Handler, Work

# A chunk whose current handler call has run this long has a hung handler (chunks are
# sized to take a few milliseconds): its other records are reported or moved elsewhere.
HANG_AFTER = 0.1
RESCUE_EVERY = 0.02  # seconds between two looks at the running chunks

Unit = Any  # a run (records of one shard) in key and partition order; a record when unordered


class Chunk:
    """Units handed to one worker thread; see the module's docstring.

    The worker appends a record's outcome (to `outcomes`, once any record of the chunk had
    one) before the record (to `done`), so a reader that sees `n` records done also sees
    their outcomes. `reported` counts the records of `done` reported so far; only
    `take_done` moves it, under the lock, so no record is reported twice.
    """

    __slots__ = ("done", "each", "lock", "outcomes", "outputs", "reported", "started", "units")

    def __init__(self, units: deque[Unit], each: bool = True) -> None:
        self.units = units
        self.each = each  # may report its outcomes as OneEach (False: always per record)
        self.done: list[Record] = []
        self.outcomes: list[Outcome | None] | None = None
        # While every record done returned one output of its own: those outputs, in order
        # (outcomes stays None). The first record to end otherwise turns them into outcomes.
        self.outputs: OneEach | None = None
        self.reported = 0
        self.started = 0.0  # when a worker took it (perf_counter); 0.0 while queued
        self.lock = threading.Lock()

    def take_done(self) -> ChunkResult | None:
        """The records finished and not reported yet, as one result (None if none)."""
        with self.lock:
            start, end = self.reported, len(self.done)
            if end == start:
                return None
            self.reported = end
            # outputs before outcomes: the worker sets outcomes before it drops outputs
            outputs, outcomes = self.outputs, self.outcomes
            if outcomes is not None:
                return ChunkResult(self.done[start:end], outcomes[start:end])
            if outputs is not None:
                return ChunkResult(self.done[start:end], OneEach(outputs[start:end]))
            return ChunkResult(self.done[start:end], None)

    def steal(self) -> list[Unit]:
        """The units no worker has taken yet, in order; the chunk ends after its current one."""
        units, stolen = self.units, []
        while True:
            try:
                stolen.append(units.pop())
            except IndexError:
                break
        stolen.reverse()
        return stolen


def pack_units(runs: Sequence[Sequence[Record]], size: int, unordered: bool) -> list[deque[Unit]]:
    """Chunks of about `size` records made of whole runs: units of single records when
    unordered (each record is its own shard), of runs otherwise."""
    chunks: list[deque[Unit]] = []
    if unordered:
        records = [entry for run in runs for entry in run]
        return [deque(records[i : i + size]) for i in range(0, len(records), size)]
    chunk: deque[Unit] = deque()
    count = 0
    for run in runs:
        if chunk and count + len(run) > size:
            chunks.append(chunk)
            chunk, count = deque(), 0
        chunk.append(run)
        count += len(run)
    if chunk:
        chunks.append(chunk)
    return chunks


def run_units(
    handler: Handler,
    chunk: Chunk,
    work: Work,
    decoder: Decode | None,
    unordered: bool,
    progress: Any = None,
) -> None:
    """Run the chunk's units as they are taken from it. A failure stops its own run (the
    rest of that run is NOT_RUN); other units go on. Anything else raised by a handler
    (SystemExit, KeyboardInterrupt) fails its record, and the rest of the chunk is not run.
    `progress[1]`, if given (a worker process's shared memory), is set to the position in
    the chunk (from 1) of the record whose handler runs: the one to blame if it dies."""
    popleft, done, default_topic = chunk.units.popleft, chunk.done, work.default_topic
    each = chunk.each
    append = done.append
    run: list[Record] = []  # unordered: the unit is one record
    while True:
        try:
            unit = popleft()
        except IndexError:
            return
        if unordered:
            record = unit
        else:
            run = unit
            record = run[0]
        index = 0
        while True:
            try:
                if progress is not None:
                    progress[1] = len(done) + 1
                if decoder is not None:
                    record.data = decode(decoder, record.value)
                result = handler(record)
                if result is not None and (one := plain_output(result, default_topic)) is None:
                    result = (normalize_outputs(result, default_topic), None)
            except Exception as exc:
                remember_location(exc)
                _report(chunk, record, (None, exc))
                for later in run[index + 1 :]:
                    _report(chunk, later, NOT_RUN)  # its shard waits for the failed one
                break
            except BaseException as exc:  # not a record's failure: stop the chunk
                _report(chunk, record, (None, exc))
                rest = run[index + 1 :] + _records(chunk.steal(), unordered)
                for later in rest:
                    _report(chunk, later, NOT_RUN)
                return
            if result is None:  # a common case: nothing to report but "done"
                if chunk.outcomes is None and chunk.outputs is None:
                    append(record)
                else:
                    _report(chunk, record, None)
            elif one is None:
                _report(chunk, record, result)
            elif each and chunk.outcomes is None and (chunk.outputs is not None or not done):
                outputs = chunk.outputs
                if outputs is None:  # the other common case: one output each
                    outputs = chunk.outputs = OneEach()
                outputs.append(one)
                append(record)
            else:
                _report(chunk, record, ([one], None))
            index += 1
            if index >= len(run):
                break
            record = run[index]


def _report(chunk: Chunk, record: Record, outcome: Outcome | None) -> None:
    """A record finished with something to report: its outcome first, then the record."""
    if chunk.outcomes is None:
        chunk.outcomes = per_record_outcomes(chunk.outputs) or [None] * len(chunk.done)
        chunk.outputs = None
    chunk.outcomes.append(outcome)
    chunk.done.append(record)


def _records(units: list[Unit], unordered: bool) -> list[Record]:
    return list(units) if unordered else [r for run in units for r in run]
