"""Executor building blocks: running chunks and batches, packing runs."""

from __future__ import annotations

import os

import pytest

from parafka import Output
from parafka.core.deserializers import DeserializationError
from parafka.core.record import Record
from parafka.executors import NOT_RUN, Work, make_executor, pack_runs, run_chunk


def recs(n: int) -> list[Record]:
    return [Record("t", 0, o, b"k") for o in range(n)]


def test_chunk_stops_at_the_first_failure() -> None:
    def handle(record: Record) -> bytes | None:
        if record.offset == 2:
            raise ValueError("bad")
        return b"out" if record.offset == 1 else None

    result = run_chunk(handle, recs(5), Work(handle, "sink"))
    assert result.outcomes is not None
    assert result.outcomes[0] is None
    assert result.outcomes[1] is not None and result.outcomes[1][0] is not None
    assert isinstance(result.outcomes[2][1], ValueError)  # type: ignore[index]
    assert result.outcomes[3] == NOT_RUN and result.outcomes[4] == NOT_RUN


def test_a_chunk_of_quiet_handlers_has_no_outcomes() -> None:
    assert run_chunk(lambda r: None, recs(3), Work(print)).outcomes is None


def test_a_batch_handler_gets_the_list_and_its_outputs_belong_to_every_record() -> None:
    seen: list[list[int]] = []

    def handle(batch: list[Record]) -> list[Output]:
        seen.append([r.offset for r in batch])
        return [Output(b"%d" % len(batch))]

    result = run_chunk(handle, recs(4), Work(handle, "sink", batch_size=10))
    assert seen == [[0, 1, 2, 3]]
    assert result.outcomes is not None
    shared = result.outcomes[0]
    assert shared is not None and shared[0] is not None and shared[0][0][1] == b"4"
    assert all(outcome is shared for outcome in result.outcomes)


def test_a_failing_batch_of_one_key_isolates_its_first_record_and_holds_back_the_rest() -> None:
    def handle(batch: list[Record]) -> None:
        raise RuntimeError("model down")

    result = run_chunk(handle, recs(3), Work(handle, batch_size=3, ordering="key"))
    assert result.outcomes is not None
    assert isinstance(result.outcomes[0][1], RuntimeError)  # type: ignore[index]
    assert result.outcomes[1:] == [NOT_RUN, NOT_RUN]


def test_a_failing_unordered_batch_tries_each_record_alone() -> None:
    def handle(batch: list[Record]) -> None:
        raise RuntimeError("model down")

    result = run_chunk(handle, recs(3), Work(handle, batch_size=3, ordering="unordered"))
    assert result.outcomes is not None
    assert all(isinstance(o[1], RuntimeError) for o in result.outcomes)  # type: ignore[index]


def test_a_value_that_fails_to_decode_fails_its_record_before_the_handler() -> None:
    seen: list[object] = []
    records = [Record("t", 0, o, b"k%d" % o, v) for o, v in enumerate([b'{"a": 1}', b"{oops"])]
    work = Work(seen.append, deserializer="json", ordering="key")
    result = run_chunk(seen.append, records, work, work.decoder())
    assert [r.data for r in seen] == [{"a": 1}]  # type: ignore[attr-defined]
    assert result.outcomes is not None
    assert isinstance(result.outcomes[1][1], DeserializationError)  # type: ignore[index]


def test_pack_runs_never_splits_a_run_and_respects_the_size() -> None:
    runs = [recs(3), recs(1), recs(2), recs(4), recs(1)]
    chunks = pack_runs(runs, 4)
    assert [len(c) for c in chunks] == [4, 2, 4, 1]
    flat = [id(r) for c in chunks for r in c]
    assert flat == [id(r) for run in runs for r in run]


def test_process_workers_default_to_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A container or `taskset` that allows 3 of the machine's 64 cores: 3 workers, not 64
    # (no process starts before `start()`).
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert make_executor("process", 8).workers == 3
    assert make_executor("process", 8, workers=2).workers == 2
    monkeypatch.delattr(os, "sched_getaffinity")  # no affinity call (macOS): the core count
    assert make_executor("process", 8).workers == 64
