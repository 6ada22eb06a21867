"""Flow control decisions: stall pauses and fair-share pauses."""

from __future__ import annotations

from parafka.core.flow import (
    BACKLOG_SECONDS,
    BUFFER_SECONDS,
    LACKING_WAIT,
    MOST_BUFFERED,
    FlowControl,
)

P0, P1, P2, P3 = ("t", 0), ("t", 1), ("t", 2), ("t", 3)


def test_stall_pauses_after_a_while_full_and_resumes_at_half() -> None:
    flow = FlowControl(limit=100, stall_after=1.0)
    assert flow.check_stall(0.0, 100, waiting=0) is None  # just became full
    assert flow.check_stall(0.5, 100, waiting=0) is None
    assert flow.check_stall(1.0, 100, waiting=0) is True
    assert flow.check_stall(1.5, 100, waiting=0) is None  # already paused
    assert flow.check_stall(2.0, 80, waiting=0) is None  # hysteresis: not yet half
    assert flow.check_stall(2.5, 50, waiting=0) is False
    assert not flow.stalled


def test_brief_fills_never_pause() -> None:
    flow = FlowControl(limit=100, stall_after=1.0)
    for step in range(100):
        held = 100 if step % 2 else 99  # full, then one finishes, then full again
        assert flow.check_stall(step * 0.05, held, waiting=0) is None


def test_a_starved_partition_makes_hoarders_pause_until_half_their_share() -> None:
    flow = FlowControl(limit=1000, starve_after=0.5)
    held = {P0: 0, P1: 30, P2: 480, P3: 490}
    backlog = {P0: True, P1: True, P2: True, P3: True}
    assert flow.rebalance_shares(0.0, held, backlog).pause == set()  # not starved long yet
    decision = flow.rebalance_shares(0.6, held, backlog)
    assert decision.pause == {P2, P3}  # over their share of 250
    assert flow.rebalance_shares(0.7, {**held, P2: 200}, backlog).resume == set()
    decision = flow.rebalance_shares(0.8, {**held, P2: 125, P3: 126}, backlog)
    assert decision.resume == {P2}
    assert flow.fair_paused == {P3}


def test_an_empty_partition_without_backlog_is_not_starved() -> None:
    flow = FlowControl(limit=1000, starve_after=0.5)
    held = {P0: 0, P1: 1000}
    backlog = {P0: False, P1: True}
    flow.rebalance_shares(0.0, held, backlog)
    assert flow.rebalance_shares(5.0, held, backlog).pause == set()


def test_no_fair_pause_while_the_buffer_has_room() -> None:
    flow = FlowControl(limit=1000, starve_after=0.5)
    held = {P0: 0, P1: 300}
    backlog = {P0: True, P1: True}
    flow.rebalance_shares(0.0, held, backlog)
    assert flow.rebalance_shares(1.0, held, backlog).pause == set()


def test_revoked_partitions_are_forgotten() -> None:
    flow = FlowControl(limit=100, starve_after=0.1)
    flow.rebalance_shares(0.0, {P0: 0, P1: 100}, {P0: True, P1: True})
    assert flow.rebalance_shares(0.2, {P0: 0, P1: 100}, {P0: True, P1: True}).pause == {P1}
    assert flow.rebalance_shares(0.3, {P0: 0}, {P0: True}).resume == set()
    assert flow.fair_paused == set()


def test_no_fair_pause_while_the_executor_is_saturated() -> None:
    """With many keys (or unordered), any held record can run: no need to reshuffle."""
    flow = FlowControl(limit=1000, starve_after=0.1)
    held = {P0: 0, P1: 1000}
    backlog = {P0: True, P1: True}
    flow.rebalance_shares(0.0, held, backlog, idle_capacity=False)
    assert flow.rebalance_shares(1.0, held, backlog, idle_capacity=False).pause == set()
    assert flow.rebalance_shares(1.1, held, backlog, idle_capacity=True).pause == {P1}


def test_handlers_on_the_loop_thread_lack_records_only_when_the_loop_waited() -> None:
    """With the handlers on the loop's own thread, free slots say nothing (a hand-over
    runs to its end at once): the executor lacks records when the loop waited for
    LACKING_WAIT of the time since the last look or more, and only then may fair share
    pause partitions."""
    flow = FlowControl(limit=1000, starve_after=0.1)
    assert not flow.lacking(0.0, handlers_here=True, free_slots=True)  # the first look
    flow.waited(0.9 * LACKING_WAIT)
    assert not flow.lacking(1.0, handlers_here=True, free_slots=True)  # just under
    flow.waited(0.5 * LACKING_WAIT)
    flow.waited(0.6 * LACKING_WAIT)
    assert flow.lacking(2.0, handlers_here=True, free_slots=False)  # waits add up
    assert not flow.lacking(3.0, handlers_here=True, free_slots=True)  # counted afresh
    flow.waited(1.0)
    assert flow.lacking(4.0, handlers_here=False, free_slots=True)  # worker threads
    assert not flow.lacking(5.0, handlers_here=False, free_slots=False)


def test_a_busy_loop_running_the_handlers_pauses_no_partition_for_a_starving_one() -> None:
    flow = FlowControl(limit=1000, starve_after=0.1)
    held = {P0: 0, P1: 1000}
    backlog = {P0: True, P1: True}
    now = 0.0
    for _ in range(10):  # the loop never waits: the partition starves, and nothing pauses
        decision = flow.rebalance_shares(now, held, backlog, flow.lacking(now, True, True))
        assert decision.pause == set()
        now += 0.1
    flow.waited(0.1 * LACKING_WAIT)  # now it waits for records
    decision = flow.rebalance_shares(now, held, backlog, flow.lacking(now, True, True))
    assert decision.pause == {P1}


def test_a_stalled_consumer_still_gives_a_starved_partition_its_share() -> None:
    """Stalled (every partition paused) with a hoarder stuck behind a hung record: held
    drops below the limit but stays above half, under the fair-share mark of 3/4. The
    hoarder must still be paused and trimmed, or the stall never ends and the starved
    partition never gets a record (found by the simulator's starving schedules)."""
    flow = FlowControl(limit=8, stall_after=1.0, starve_after=0.2)
    assert flow.check_stall(0.0, 8, waiting=0) is None
    assert flow.check_stall(1.0, 8, waiting=0) is True  # full for a while: everything paused
    assert flow.check_stall(1.5, 5, waiting=0) is None  # 5 held: not yet half
    held, backlog = {P0: 5, P1: 0}, {P0: True, P1: True}
    flow.rebalance_shares(1.5, held, backlog)
    decision = flow.rebalance_shares(1.8, held, backlog)
    assert decision.pause == {P0}


def test_a_stall_ends_with_room_once_a_partition_starves() -> None:
    """Stalled, with records stuck behind a hung one that never drop to half the limit
    (a hung run and its copy redelivered after a rebalance, which cannot be trimmed): once
    a partition with a backlog has starved, the stall ends as soon as there is room, not
    at half (found by the simulator's starving schedules)."""
    flow = FlowControl(limit=8, stall_after=1.0, starve_after=0.2)
    flow.check_stall(0.0, 8, waiting=0)
    assert flow.check_stall(1.0, 8, waiting=0) is True
    held, backlog = {P0: 4, P1: 0}, {P0: True, P1: True}
    assert flow.check_stall(1.1, 5, waiting=0) is None  # above half: stays stalled
    flow.rebalance_shares(1.1, held, backlog)
    flow.rebalance_shares(1.4, held, backlog)  # P1 starved for 0.3 s
    assert flow.check_stall(1.4, 5, waiting=0) is False
    assert not flow.stalled


def test_without_a_users_limit_the_buffer_grows_with_the_rate_up_to_its_ceiling() -> None:
    flow = FlowControl(1000, follows_rate=True)
    assert not flow.follow(5_000)  # a slow loop keeps the default
    assert flow.limit == 1000
    assert flow.follow(100_000)
    assert flow.limit == int(100_000 * BUFFER_SECONDS)
    assert flow.room(4500, waiting=0) == flow.limit - 4500
    assert not flow.follow(30_000)  # it never shrinks under records it may hold
    assert flow.limit == int(100_000 * BUFFER_SECONDS)
    flow.follow(10_000_000)
    assert flow.limit == MOST_BUFFERED


def test_a_users_limit_stays_what_they_set() -> None:
    flow = FlowControl(300)
    assert not flow.follow(1_000_000)
    assert flow.limit == 300


def test_without_a_users_limit_records_waiting_to_start_are_bounded_by_the_backlog() -> None:
    flow = FlowControl(1000, follows_rate=True)
    assert flow.backlog == 1000  # never under the starting limit
    assert flow.room(900, waiting=300) == 100  # the limit is the nearer bound
    flow.follow(1_000_000)
    assert flow.limit == MOST_BUFFERED
    assert flow.backlog == int(1_000_000 * BACKLOG_SECONDS) == 5000
    # Records awaiting their outputs' acknowledgement are held, not waiting: they may
    # fill the buffer up to the limit, while the backlog stays short.
    assert flow.room(3000, waiting=2000) == 3000  # the backlog is the nearer bound
    assert flow.room(8000, waiting=1000) == 2000  # the limit is
    assert flow.room(5000, waiting=5000) == 0
    flow.follow(100_000)  # slower now: neither bound shrinks
    assert flow.backlog == 5000


def test_a_users_limit_is_the_only_bound_on_what_is_fetched() -> None:
    flow = FlowControl(12_000)
    flow.follow(1_000_000)
    assert flow.room(3000, waiting=3000) == 9000


def test_a_full_backlog_that_does_not_move_pauses_everything_too() -> None:
    """A full backlog stops fetching as a full buffer does, so it must stall the same way:
    a loop that stops fetching without pausing polls no more (the group would drop it
    after max.poll.interval.ms while a hung handler holds every waiting record back)."""
    flow = FlowControl(1000, follows_rate=True)
    flow.follow(1_000_000)  # limit 10,000, backlog 5,000
    assert flow.check_stall(0.0, 6000, waiting=5000) is None  # just became full
    assert flow.check_stall(1.0, 6000, waiting=5000) is True
    assert flow.check_stall(1.5, 4000, waiting=3000) is None  # hysteresis: not yet half
    assert flow.check_stall(2.0, 4000, waiting=2500) is False
