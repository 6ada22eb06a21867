"""How the control loop recognises a batch settled by one handler call, and a chunk of
one output a record (pure)."""

from __future__ import annotations

from parafka.core.ledger import _one_success
from parafka.core.outcomes import OneEach, as_one_each, per_record_outcomes
from parafka.executors import NOT_RUN


def test_one_batch_call_is_recognised_by_identity() -> None:
    shared = ([("out", b"v", b"k", None)], None)
    assert _one_success(shared, [shared, shared, shared])


def test_equal_outputs_of_separate_records_are_not_one_batch() -> None:
    # Three records whose handler returned the same output: each must be produced.
    outcomes = [([("out", b"v", b"k", None)], None) for _ in range(3)]
    assert outcomes[0] == outcomes[1]
    assert not _one_success(outcomes[0], list(outcomes))


def test_not_run_failed_and_mixed_chunks_take_the_slow_path() -> None:
    shared = ([("out", b"v", None, None)], None)
    failed = (None, ValueError("boom"))
    assert not _one_success(NOT_RUN, [NOT_RUN, NOT_RUN])
    assert not _one_success(failed, [failed, failed])
    assert not _one_success(shared, [shared, None])
    assert not _one_success(None, [None, None])


def test_one_output_of_its_own_each_is_one_each_and_nothing_else_is() -> None:
    out = [("out", b"%d" % i, None, None) for i in range(3)]
    each = as_one_each([([o], None) for o in out])
    assert type(each) is OneEach and each == out
    shared = ([out[0]], None)
    assert as_one_each([shared, shared]) is None  # a batch's list: produced once
    assert as_one_each([([out[0], out[1]], None)]) is None  # two outputs
    assert as_one_each([([out[0]], None), None]) is None  # done with no output
    assert as_one_each([([out[0]], None), (None, ValueError("boom"))]) is None
    assert as_one_each([([out[0]], None), NOT_RUN]) is None
    assert as_one_each(None) is None
    assert per_record_outcomes(each) == [([o], None) for o in out]
