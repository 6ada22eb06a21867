"""The checks of the reliability scenarios (reliability/), on made-up data: they must catch
what they claim to catch, or a green scenario means nothing."""

from __future__ import annotations

import json
from datetime import datetime

from reliability.common import OutputLog, Produced, Report, RssSeries, rate, tally
from reliability.crash_loop import duplicate_bound
from reliability.rebalance_churn import Period, check_order, ownership_periods

T = "orders"


def _stamp(seconds: float) -> str:
    """A CLI log timestamp for `seconds` past 2026-01-01 00:00:00 local time."""
    when = datetime(2026, 1, 1).timestamp() + seconds
    text = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S,%f")
    return text[:-3]  # milliseconds, as logging writes them


def _at(seconds: float) -> float:
    return datetime(2026, 1, 1).timestamp() + seconds


def _run(instance: str, partition: int, offset: int, key: str, seconds: float) -> Report:
    return Report(partition, offset, key, instance, 1, int(_at(seconds) * 1e9))


def test_ownership_periods_follow_assign_revoke_and_lost_lines() -> None:
    log = "\n".join(
        [
            f"{_stamp(1)} INFO    parafka.engine.control: assigned {T}[0], {T}[1]",
            f"{_stamp(2)} INFO    parafka.engine.control: revoked {T}[0], {T}[1]",
            f"{_stamp(3)} INFO    parafka.engine.control: assigned {T}[1]",
            f"{_stamp(4)} WARNING parafka.engine.control: lost {T}[1] (session expired); "
            "uncommitted ...",
            f"{_stamp(5)} INFO    parafka.engine.control: assigned other[0], {T}[0]",
            "%3|1795324809.437|FAIL|rdkafka#consumer-12| not a parafka line",
        ]
    )
    periods = ownership_periods("i1", log, T)
    assert sorted((p.partition, p.start, p.end) for p in periods) == [
        (0, _at(1), _at(2)),
        (0, _at(5), float("inf")),
        (1, _at(1), _at(2)),
        (1, _at(3), _at(4)),
    ]


def test_check_order_accepts_increasing_offsets_per_period_and_key() -> None:
    periods = [Period("i1", 0, _at(0), _at(10)), Period("i1", 0, _at(20), _at(30))]
    runs = [
        _run("i1", 0, 5, "a", 1),
        _run("i1", 0, 7, "a", 2),
        _run("i1", 0, 6, "b", 3),  # another key may run later with a lower offset
        # The next period starts again from the committed offset: 5 may come back.
        _run("i1", 0, 5, "a", 21),
        _run("i1", 0, 8, "a", 22),
    ]
    result = check_order(runs, periods)
    assert result.violations == [] and result.outside == []
    assert result.sequences == 2 and result.runs_checked == 5


def test_check_order_reports_a_key_going_back_within_a_period() -> None:
    periods = [Period("i1", 0, _at(0), _at(10))]
    runs = [_run("i1", 0, 7, "a", 1), _run("i1", 0, 5, "a", 2), _run("i1", 0, 7, "a", 3)]
    result = check_order(runs, periods)
    assert len(result.violations) == 2  # 5 after 7, then 7 again after 5


def test_check_order_reports_runs_of_partitions_not_owned() -> None:
    periods = [Period("i1", 0, _at(0), _at(10))]
    runs = [_run("i1", 0, 1, "a", 11), _run("i2", 0, 2, "a", 1), _run("i1", 1, 3, "a", 1)]
    assert len(check_order(runs, periods).outside) == 3


def test_tally_counts_missing_duplicate_and_unexpected_records() -> None:
    produced = Produced("t", {0: 3, 1: 2})
    positions = [(0, 0), (0, 0), (0, 2), (1, 1), (1, 1), (1, 1), (1, 9)]
    runs = [Report(p, o, "k", "i", 1, n) for n, (p, o) in enumerate(positions)]
    result = tally(produced, runs)
    assert (result.expected, result.reports) == (5, 7)
    assert result.missing == 2  # 0@1 and 1@0
    assert result.duplicates == 3 and result.duplicated_records == 2
    assert result.unexpected == 1


def test_duplicate_bound_adds_running_last_interval_and_buffer() -> None:
    # 16 running + 1,000 records/s over 1 s plus a 0.25 s commit round trip + 1,000 buffered
    assert duplicate_bound(16, 1000, 1000.0, 1.0) == 16 + 1250 + 1000


def test_rss_series_windows() -> None:
    series = RssSeries([(0.0, 10), (1.0, 30), (2.0, 20), (4.0, 25)])
    assert series.peak == 30
    assert series.at(0.5) == 20  # first sample at or after 2.0 s
    assert series.window_max(2.0, 4.0) == 25


def test_rate_is_taken_over_the_last_seconds() -> None:
    slow = [n * 1.0 for n in range(8)]  # 1 per second, then 20 per second for 2 s
    fast = [8.0 + n * 0.05 for n in range(40)]
    runs = [Report(0, n, "k", "i", 1, int(t * 1e9)) for n, t in enumerate(slow + fast)]
    assert rate(runs) == 20.0
    assert rate(runs[:3]) == 1.5  # a span under the window: 3 runs over 2 s
    assert rate(runs[:1]) == 0.0


def _output(partition: int, offset: int) -> bytes:
    """The `report` handler's output for input record (partition, offset)."""
    body = {"p": partition, "o": offset, "k": "k1", "i": "i1", "pid": 1, "t": 0}
    return json.dumps(body).encode()


def test_output_log_takes_an_output_shown_after_a_later_one_and_each_only_once() -> None:
    # The local broker showed output offset 107 of a partition before 106 (two instances
    # producing at once); a reader that only went forward never counted 106's record.
    log = OutputLog()
    assert log.take(0, 107, _output(4, 31))
    assert log.take(0, 106, _output(4, 30))  # shown late
    assert not log.take(0, 106, _output(4, 30))  # read again from the topic's start
    assert not log.take(0, 107, _output(4, 31))
    assert log.take(1, 106, _output(4, 30))  # the same record run twice: a duplicate
    assert log.distinct == {(4, 30), (4, 31)}
    assert [(r.partition, r.offset) for r in log.reports] == [(4, 31), (4, 30), (4, 30)]
