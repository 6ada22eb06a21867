"""True lag arithmetic: the parts add up, a stuck record shows as stuck, not as backlog."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parafka.core.codec import encode_completed
from parafka.core.lag import HeadWatch, committed_lag, partition_stats, split_lag
from parafka.core.offsets import PartitionOffsets

TP = ("orders", 0)


def test_parts_add_up_to_log_end_minus_committed() -> None:
    parts = split_lag(
        log_end=100, committed=40, next_offset=70, unfinished=12, in_flight=5, done_above=3
    )
    assert parts.not_fetched == 30
    assert parts.queued == 7
    assert parts.in_flight == 5
    assert parts.done_not_committed == 18  # 30 received - 12 unfinished
    assert parts.total == 100 - 40


def test_log_end_behind_the_next_offset_counts_nothing_to_fetch() -> None:
    """A broker whose high watermark lags the log end (the local one) must not make the
    lag negative."""
    parts = split_lag(
        log_end=41, committed=40, next_offset=50, unfinished=2, in_flight=1, done_above=0
    )
    assert parts.not_fetched == 0
    assert parts.total == 10


def test_unknown_log_end_leaves_the_total_unknown() -> None:
    parts = split_lag(
        log_end=None, committed=0, next_offset=10, unfinished=1, in_flight=1, done_above=0
    )
    assert parts.not_fetched is None
    assert parts.total is None
    assert parts.done_not_committed == 9


def test_before_the_first_commit_only_done_above_counts_as_done() -> None:
    parts = split_lag(
        log_end=20, committed=None, next_offset=10, unfinished=4, in_flight=2, done_above=3
    )
    assert (parts.not_fetched, parts.queued, parts.in_flight, parts.done_not_committed) == (
        10,
        2,
        2,
        3,
    )


def test_nothing_received_yet() -> None:
    parts = split_lag(
        log_end=10, committed=None, next_offset=None, unfinished=0, in_flight=0, done_above=0
    )
    assert parts.not_fetched is None
    assert parts.total is None


def _tracker(committed: int, received: range) -> PartitionOffsets:
    state = PartitionOffsets(committed=committed)
    for offset in received:
        state.receive(offset)
    return state


def test_a_stuck_record_is_one_in_flight_with_the_rest_done() -> None:
    """Offset 10 hangs in its handler; 11-19 are finished: the lag is not a backlog."""
    state = _tracker(10, range(10, 20))
    state.running = 1  # offset 10 is with a handler
    for offset in range(11, 20):
        state.finish(offset)
    heads = HeadWatch()
    first = partition_stats(TP, state, 20, heads, now=100.0)
    later = partition_stats(TP, state, 20, heads, now=160.0)
    assert (later.not_fetched, later.queued, later.in_flight, later.done_not_committed) == (
        0,
        0,
        1,
        9,
    )
    assert later.lag == 10
    assert later.oldest_unfinished == 10
    assert first.oldest_age == 0.0
    assert later.oldest_age == 60.0


def test_a_backlog_is_queued_and_not_fetched() -> None:
    state = _tracker(0, range(0, 50))
    state.running = 4
    stats = partition_stats(TP, state, 1000, HeadWatch(), now=0.0)
    assert (stats.not_fetched, stats.queued, stats.in_flight, stats.done_not_committed) == (
        950,
        46,
        4,
        0,
    )


def test_finished_but_not_yet_committed() -> None:
    """Everything finished since the last commit: done, not committed, nothing pending."""
    state = _tracker(5, range(5, 15))
    for offset in range(5, 15):
        state.finish(offset)
    stats = partition_stats(TP, state, 15, HeadWatch(), now=0.0)
    assert stats.done_not_committed == 10
    assert stats.lag == 10
    assert stats.oldest_unfinished is None
    assert stats.oldest_age is None
    state.mark_committed(state.position or 0)
    assert partition_stats(TP, state, 15, HeadWatch(), now=0.0).lag == 0


def test_head_watch_restarts_when_the_oldest_record_changes() -> None:
    heads = HeadWatch()
    assert heads.age(TP, 7, 1.0) == 0.0
    assert heads.age(TP, 7, 4.0) == 3.0
    assert heads.age(TP, 8, 5.0) == 0.0  # 7 finished: the position moved
    assert heads.age(TP, 8, 5.5) == 0.5
    assert heads.age(TP, None, 6.0) is None  # nothing unfinished
    assert heads.age(TP, 8, 7.0) == 0.0


def test_head_watch_forgets_revoked_partitions() -> None:
    heads = HeadWatch()
    heads.age(("a", 0), 1, 0.0)
    heads.age(("a", 1), 1, 0.0)
    heads.retain([("a", 1)])
    assert heads.age(("a", 0), 1, 9.0) == 0.0
    assert heads.age(("a", 1), 1, 9.0) == 9.0


@given(
    start=st.integers(0, 1000),
    count=st.integers(0, 200),
    fetched_ahead=st.integers(0, 500),
    data=st.data(),
)
def test_parts_always_sum_to_the_lag(
    start: int, count: int, fetched_ahead: int, data: st.DataObject
) -> None:
    """Whatever finished, ran or was committed, the parts add up to log end - committed."""
    state = _tracker(start, range(start, start + count))
    offsets = list(range(start, start + count))
    finished = data.draw(
        st.lists(st.sampled_from(offsets), unique=True) if offsets else st.just([])
    )
    for offset in finished:
        state.finish(offset)
    if data.draw(st.booleans()) and state.position is not None:
        state.mark_committed(state.position)
    running = data.draw(st.integers(0, state.pending_count))
    state.running = running
    log_end = start + count + fetched_ahead
    stats = partition_stats(TP, state, log_end, HeadWatch(), now=0.0)
    assert stats.committed is not None
    assert stats.lag == log_end - stats.committed
    assert stats.in_flight == running
    assert stats.queued + stats.in_flight == state.pending_count
    assert min(stats.queued, stats.in_flight, stats.done_not_committed) >= 0


def test_committed_lag_of_a_plain_group() -> None:
    row = committed_lag("t", 0, low=0, high=50, committed=20, metadata=None)
    assert (row.committed, row.log_end, row.lag, row.done_not_committed) == (20, 50, 30, None)


def test_committed_lag_reads_parafka_metadata() -> None:
    metadata = encode_completed(20, [22, 23, 30])
    row = committed_lag("t", 0, low=0, high=50, committed=20, metadata=metadata)
    assert row.lag == 30
    assert row.done_not_committed == 3


def test_committed_lag_ignores_foreign_metadata_and_missing_commits() -> None:
    assert committed_lag("t", 0, low=0, high=9, committed=3, metadata="other tool").lag == 6
    none = committed_lag("t", 1, low=0, high=9, committed=-1001, metadata=None)
    assert (none.committed, none.lag, none.done_not_committed) == (None, None, None)


def test_committed_lag_does_not_count_records_deleted_by_retention() -> None:
    row = committed_lag("t", 0, low=80, high=100, committed=10, metadata=None)
    assert row.lag == 20


def test_a_log_end_below_the_committed_offset_is_unknown_not_zero_lag() -> None:
    """Seen on the local broker: committed 400, log end 1, printed lag 0 (issue 13)."""
    from parafka.core.lag import committed_lag
    from parafka.observe.lagview import as_dict, as_text

    row = committed_lag("t", 0, low=0, high=1, committed=400, metadata=None)
    assert row.lag is None and row.log_end_unknown
    text = as_text("g", [row])
    assert "log end unknown on this broker" in text
    assert text.splitlines()[1].split() == ["t", "0", "400", "?", "?", "-"]
    assert as_dict("g", [row])["partitions"][0]["log_end_unknown"] is True
    fine = committed_lag("t", 0, low=0, high=500, committed=400, metadata=None)
    assert fine.lag == 100 and not fine.log_end_unknown
