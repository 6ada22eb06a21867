"""The simulator's invariants catch what they claim to (each check fed a history that
breaks it, and one that does not)."""

from __future__ import annotations

import pytest

from parafka.core.deadletter import OFFSET, PARTITION
from parafka.testing.memory import MemoryMessage
from parafka.testing.sim.checks import Checker, Violation

TP = ("in", 0)


def checker(ordering: str = "key") -> Checker:
    # offsets 0..3 of one partition: keys a, b, a, a; 0 and 2 return an output
    return Checker("in", ordering, {TP: [b"a", b"b", b"a", b"a"]}, {(TP, 0), (TP, 2)})


def output(offset: int, member: int = 0, position: int = 0) -> MemoryMessage:
    body = f'{{"m": {member}, "p": 0, "o": {offset}}}'.encode()
    return MemoryMessage("out", 0, position, b"a", body, None, 0)


def letter(offset: int) -> MemoryMessage:
    """The dead letter of offset `offset` of partition 0, as the dead-letter topic holds it."""
    headers = [(PARTITION, b"0"), (OFFSET, str(offset).encode())]
    return MemoryMessage("dlq", 0, offset, None, None, headers, 0)


def test_a_commit_past_a_record_not_done_is_caught() -> None:
    check = checker()
    check.succeeded_on(TP, 0)  # succeeded, but its output never arrived
    check.succeeded_on(TP, 1)
    with pytest.raises(Violation, match="committed: offset 2"):
        check.committed(TP, 2, "")
    check.new_outputs([output(0)], now=0.0)
    check.committed(TP, 2, "")


def test_a_start_before_an_older_record_of_its_key_succeeded_is_caught() -> None:
    check = checker("key")
    check.started(0, TP, 1)  # key b: nothing older of b
    with pytest.raises(Violation, match="order: consumer 0 started in\\[0\\]@2"):
        check.started(0, TP, 2)
    check.succeeded_on(TP, 0)
    check.started(0, TP, 2)


def test_partition_order_waits_for_every_older_record() -> None:
    check = checker("partition")
    check.succeeded_on(TP, 0)
    with pytest.raises(Violation, match="order"):
        check.started(0, TP, 2)  # 1 (another key) did not succeed


def test_a_dispatch_after_the_partition_left_is_caught() -> None:
    check = checker()
    check.owned(0, [TP], now=0.0)
    check.dispatched(0, TP, 0, open_part=True, now=1.0)
    check.released(0, [TP], now=2.0)
    with pytest.raises(Violation, match="revoked"):
        check.dispatched(0, TP, 1, open_part=True, now=3.0)


def test_memory_over_the_bound_is_caught() -> None:
    Checker.memory(0, 8, 8)
    with pytest.raises(Violation, match="memory"):
        Checker.memory(0, 9, 8)


def test_outputs_of_a_key_taking_effect_out_of_order_are_caught() -> None:
    check = checker("key")
    check.owned(0, [TP], now=0.0)
    for offset in (1, 3):
        check.succeeded_on(TP, offset)
    check.new_outputs([output(2, position=0), output(0, position=1)], now=1.0)
    with pytest.raises(Violation, match="order of effects"):
        check.final({TP: 4})


def test_a_late_copy_from_a_consumer_that_lost_the_partition_does_not_count() -> None:
    check = checker("key")
    check.owned(0, [TP], now=0.0)
    check.new_outputs([output(0), output(2)], now=1.0)
    check.released(0, [TP], now=2.0)
    check.owned(1, [TP], now=2.0)
    check.new_outputs([output(0, member=0)], now=3.0)  # a zombie's late delivery
    for offset in (1, 3):
        check.succeeded_on(TP, offset)
    check.final({TP: 4})


def test_a_lost_record_and_a_stalled_partition_are_caught() -> None:
    check = checker()
    check.new_outputs([output(0), output(2)], now=0.0)
    check.succeeded_on(TP, 1)
    with pytest.raises(Violation, match="lost: in\\[0\\]@3"):
        check.final({TP: 4})
    check.succeeded_on(TP, 3)
    with pytest.raises(Violation, match="stall"):
        check.final({TP: 3})


def test_a_record_dead_lettered_for_another_records_failure_is_caught() -> None:
    check = checker()
    check.blame_only_failures({(TP, 1)})
    with pytest.raises(Violation, match="blame"):
        check.new_dead_letters([letter(1)])
    check.blame_only_failures(set())  # a refused delivery may have used up its attempts
    check.new_dead_letters([letter(1)])


def test_a_record_handed_over_before_the_partition_came_back_at_that_instant_is_a_zombies() -> None:
    # Member 0's session expires; at one instant of the clock it hands offset 2 to its
    # executor and then hears that the partition is lost and its own again. Offset 2's late
    # output is the old assignment's, not an effect of the owner.
    check = checker("key")
    check.owned(0, [TP], now=0.0)
    check.expired(0, [TP], now=1.0)
    check.dispatched(0, TP, 2, open_part=True, now=2.0)
    check.succeeded_on(TP, 2, member=0, now=2.0)
    check.released(0, [TP], now=2.0)
    check.owned(0, [TP], now=2.0)
    check.new_outputs([output(2)], now=3.0)
    assert not check.outputs[-1].owned
    check.dispatched(0, TP, 2, open_part=True, now=4.0)  # the new assignment's run
    check.new_outputs([output(2)], now=5.0)
    assert check.outputs[-1].owned


def test_a_dead_lettered_records_earlier_output_is_not_its_effect_unless_it_came_later() -> None:
    # Offset 2 ran and was output; a rebalance replays 0 and 2; 2 is dead-lettered then.
    check = checker("key")
    check.owned(0, [TP], now=0.0)
    check.new_outputs([output(0), output(2)], now=1.0)
    check.new_outputs([output(0)], now=2.0)
    for offset in (1, 3):
        check.succeeded_on(TP, offset)
    check.new_dead_letters([letter(2)])
    check.final({TP: 4})
    # A later owned output of 2 is its effect again, and comes after 0's: in order.
    check.new_outputs([output(2)], now=3.0)
    check.final({TP: 4})
    # A later output of 0 (the record before 2) than 2's last one, with no letter after it:
    # out of order.
    check.new_outputs([output(0)], now=4.0)
    with pytest.raises(Violation, match="order of effects"):
        check.final({TP: 4})
