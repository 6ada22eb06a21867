"""failures.py: where a handler failed, and which failure lines are logged."""

from __future__ import annotations

import logging
import pickle

import pytest

from parafka.core.errors import NoOutputTopic, RecordFailed
from parafka.core.failures import (
    FailureLog,
    describe,
    is_mistake,
    location,
    remember_location,
    report,
)
from parafka.core.retry import RetryPolicy
from tests.handlers.newcomer import subscript_int


def _raised_by_handler() -> BaseException:
    from parafka.core.record import Record

    try:
        subscript_int(Record("t", 0, 3))
    except TypeError as exc:
        return exc
    raise AssertionError("the handler did not fail")


def test_location_is_the_handlers_line() -> None:
    error = _raised_by_handler()
    where = location(error)
    assert where is not None
    assert where.endswith("newcomer.py:11"), where
    assert describe(error).endswith(f"(at {where})")


def test_location_skips_library_frames_and_is_none_without_traceback() -> None:
    import json

    def handler() -> None:
        json.loads("{")

    try:
        handler()
    except ValueError as exc:
        where = location(exc)
    assert where is not None and "test_failures.py" in where  # not json/decoder.py
    assert location(ValueError("never raised")) is None


def test_location_survives_pickling_when_remembered() -> None:
    error = _raised_by_handler()
    remember_location(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.__traceback__ is None
    assert location(copy) == location(error)


def test_record_failed_names_the_line() -> None:
    error = _raised_by_handler()
    assert f"(at {location(error)})" in str(RecordFailed("t", 0, 3, 5, error))


def test_no_output_topic_is_a_mistake_never_retried() -> None:
    error = NoOutputTopic("no topic")
    assert is_mistake(error) and isinstance(error, ValueError)
    assert not RetryPolicy().should_retry(1, error)
    assert not is_mistake(TypeError("data"))


def test_repeats_are_grouped_per_window() -> None:
    log = FailureLog(window=5.0)
    error = _raised_by_handler()
    first = log.failed(error, "t[0]@0", 1, "retrying in 0.50 s", now=0.0)
    assert first is not None and "t[0]@0 failed on attempt 1" in first and "newcomer.py:11" in first
    for offset in range(1, 400):
        assert log.failed(error, f"t[0]@{offset}", 1, "retrying in 0.50 s", now=1.0) is None
    assert log.due(now=4.9) == []
    (summary,) = log.due(now=5.0)
    assert summary.startswith("TypeError at ") and "newcomer.py:11" in summary
    assert "on 399 record(s) in the last 5 s" in summary and "retrying 399" in summary
    # Quiet for a whole window: forgotten, the next one is shown in full again.
    assert log.due(now=10.0) == []
    assert log.failed(error, "t[0]@1", 2, "retrying in 1.00 s", now=11.0) is not None


def test_other_errors_are_not_hidden_by_a_group() -> None:
    log = FailureLog()
    assert log.failed(_raised_by_handler(), "t[0]@0", 1, "skipped", 0.0) is not None
    assert log.failed(KeyError("x"), "t[0]@1", 1, "skipped", 0.1) is not None


def test_flush_reports_what_is_left() -> None:
    log = FailureLog()
    error = KeyError("x")
    log.failed(error, "t[0]@0", 1, "sent to dead-letter topic dlq", 0.0)
    log.failed(error, "t[0]@1", 1, "sent to dead-letter topic dlq", 0.5)
    (line,) = log.flush(1.0)
    assert "dead-lettered 1" in line
    assert log.flush(2.0) == []


def test_report_logs_tracebacks_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("parafka.test_failures")
    error = _raised_by_handler()
    with caplog.at_level(logging.INFO, logger=logger.name):
        report(logger, FailureLog(), error, "t[0]@0", 1, "skipped", 0.0)
    assert [r.exc_info for r in caplog.records] == [None]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        report(logger, FailureLog(), error, "t[0]@0", 1, "skipped", 0.0)
    assert any(r.exc_info for r in caplog.records)


def test_a_handler_with_the_wrong_signature_is_refused_at_load() -> None:
    from parafka import ParallelConsumer
    from parafka.core.errors import ConfigError
    from tests.handlers.newcomer import two_arguments

    with pytest.raises(
        ConfigError,
        match=r"two_arguments\(record, context\) "
        r"cannot be called with one record \(at .*newcomer.py:\d+\)",
    ):
        ParallelConsumer(two_arguments, bootstrap_servers="x:1", group_id="g", topics="t")
    ParallelConsumer(
        lambda record, extra=1: None, bootstrap_servers="x:1", group_id="g", topics="t"
    )
    ParallelConsumer(print, bootstrap_servers="x:1", group_id="g", topics="t")


def test_the_summary_gives_the_rate_over_the_active_time() -> None:
    from parafka.core.stats import Activity

    activity = Activity(every=0.25)
    activity.observe(10.0, 0)  # joining: nothing yet
    activity.observe(20.0, 500)
    activity.observe(21.75, 2000)
    activity.observe(40.0, 2000)  # the idle wait: the count stays
    assert activity.seconds == 2.0
    assert activity.summary(45.0) == (
        "processed 2000 records in 2.0 s active (1000 records/s); 45.0 s in all, with "
        "connecting, joining and waiting"
    )
