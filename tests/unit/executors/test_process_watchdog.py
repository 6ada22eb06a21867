"""The process executor's watchdog reports a hung chunk's finished records early: only
those with nothing to produce, whatever the worker thread does while it looks."""

from __future__ import annotations

from collections import deque
from typing import Any

from parafka.core.outcomes import NOT_RUN
from parafka.core.record import Record
from parafka.executors.chunks import Chunk, _report
from parafka.executors.processes import EARLY, _Running, _split


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


class _DoneWhileRead(list):  # type: ignore[type-arg]
    """`done` whose length is read just as the worker finishes a record with an output."""

    def __init__(self, chunk: Chunk, record: Record) -> None:
        super().__init__()
        self.chunk, self.record = chunk, record

    def __len__(self) -> int:
        if self.record is not None:
            record, self.record = self.record, None  # type: ignore[assignment]
            _report(self.chunk, record, ([("out", b"v", None, None)], None))
        return super().__len__()


def test_a_record_with_outputs_that_finishes_during_the_look_is_not_reported_early() -> None:
    first, second = Record("t", 0, 0, b"a"), Record("t", 0, 1, b"b")
    chunk = Chunk(deque([[second]]))
    chunk.done = _DoneWhileRead(chunk, first)
    running = _Running(7, chunk, 2, unordered=False)
    pipe = _Pipe()
    _split(running, pipe)  # type: ignore[arg-type]
    [(chunk_id, report, seconds, positions)] = pipe.sent
    assert (chunk_id, seconds) == (7, EARLY)
    # The first record's output is not delivered yet: the chunk's final report says so.
    # Only the unit nobody started goes back.
    assert (positions, report) == ([1], [NOT_RUN])
    assert running.reported == {1}
