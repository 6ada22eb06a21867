"""Operator actions as ledger transitions (pure): skip and park of a queued, retrying or
running record, refusals, and the steering's command queue (no broker, no loop)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parafka import ParallelConsumer, Record
from parafka.core.entry import DROPPED, RETRY_WAIT, RUNNING, SENDING, SETTLED
from parafka.core.errors import ActionRefused
from parafka.core.ledger import Ledger
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import ORDERINGS
from parafka.engine.steering import Answer, Steering
from parafka.testing import InMemoryCluster
from tests.unit.core.test_ledger import Sim
from tests.unit.entries import message

TP = ("orders", 0)


def ledger(
    ordering: str = "partition", concurrency: int = 4, retry_topic: str | None = None
) -> Ledger:
    ledger = Ledger(
        ordering,  # type: ignore[arg-type]
        concurrency,
        RetryPolicy(max_attempts=3, initial_backoff=100.0, jitter=0.0),
        failure_policy="dead-letter",
        retry_topic=retry_topic,
    )
    ledger.assign(TP, 0)
    ledger.accept([message(*TP, offset, b"k%d" % offset) for offset in range(4)])  # type: ignore[list-item]
    return ledger


def test_a_running_record_skipped_counts_done_and_its_outcome_is_ignored() -> None:
    book = ledger()
    (run,) = book.take()
    entry = run[0]
    assert entry.state is RUNNING
    found = book.find(TP, 0)
    assert found is entry
    book.skip(entry)
    assert entry.state is SETTLED and book.counts.operator_skipped == 1
    assert book.parts[TP].offsets.position == 1  # committed past it
    late = book.completed([entry], [(None, ValueError("late failure"))])
    assert not late.letters and book.counts.failed == 0  # the late outcome is ignored
    assert book.counts.processed == 0 and book.held == 3
    assert book.take()[0][0].offset == 1  # the partition moves on


def test_a_retrying_record_skipped_frees_its_partition() -> None:
    book = ledger()
    (run,) = book.take()
    book.completed(run, [(None, ValueError("boom"))])
    entry = book.find(TP, 0)
    assert entry is not None and entry.state is RETRY_WAIT
    assert book.take() == []  # the partition waits for the retry
    book.skip(entry)
    assert book.parts[TP].offsets.position == 1
    assert [e.offset for (e,) in book.take()] == [1]
    book.release_due(1e9)  # its stale retry is not released again
    assert entry.state is SETTLED


def test_a_queued_record_behind_an_older_one_is_refused_then_skipped_at_the_head() -> None:
    book = ledger()
    queued = book.find(TP, 2)
    assert queued is not None
    with pytest.raises(ActionRefused, match=r"orders\[0\]@2: an older record"):
        book.skip(queued)
    book.skip(book.find(TP, 0))  # type: ignore[arg-type]  # queued at the head
    book.skip(book.find(TP, 1))  # type: ignore[arg-type]
    assert book.parts[TP].offsets.position == 2 and book.counts.operator_skipped == 2


def test_unordered_queued_records_can_be_skipped_anywhere() -> None:
    book = ledger("unordered")
    entry = book.find(TP, 2)
    assert entry is not None
    book.skip(entry)
    assert {e.offset for run in book.take() for e in run} == {0, 1, 3}


def test_park_hands_the_record_to_the_dead_letter_writer_then_done() -> None:
    book = ledger()
    (run,) = book.take()
    actions = book.park(run[0], RuntimeError("parked"))
    assert [(e.offset, str(err)) for e, err in actions.letters] == [(0, "parked")]
    assert run[0].state is SENDING and run[0].first_failure is not None
    book.letter_settled(run[0], None)
    assert book.counts.dead_lettered == 1 and book.parts[TP].offsets.position == 1


def test_with_a_retry_topic_park_parks_there_and_a_parked_record_is_dead_lettered() -> None:
    book = ledger("key", retry_topic="orders-retry")
    runs = book.take()
    first = runs[0][0]
    actions = book.park(first, RuntimeError("by hand"))
    assert actions.letters == [] and [(e.offset, str(c)) for e, c in actions.parks] == [
        (0, "by hand")
    ]
    assert first.state is SENDING
    book.park_settled(first, None)
    assert book.counts.parked == 1 and book.parts[TP].offsets.position == 1
    book.assign(("orders-retry", 0), 0)
    book.accept([message("orders-retry", 0, 0, b"k0")])  # type: ignore[list-item]
    parked = book.find(("orders-retry", 0), 0)
    assert parked is not None
    assert [e.offset for e, _ in book.park(parked, RuntimeError("out")).letters] == [0]


def test_records_not_held_are_not_found() -> None:
    book = ledger()
    assert book.find(TP, 99) is None and book.find(("other", 0), 0) is None
    book.revoking([TP])
    assert book.find(TP, 1) is None  # a revoking partition offers nothing to act on


def test_a_command_nobody_takes_times_out_and_never_applies_late() -> None:
    steering = Steering()
    answer = steering.request("pause", "orders", 0, timeout=0.05)
    assert answer.result == "timeout" and "nothing was changed" in answer.message

    class Helm:
        ledger = ledger()
        settings = None

        def hold(self, tp: tuple[str, int]) -> None:
            raise AssertionError("a withdrawn command was applied")

    steering.step(Helm())  # type: ignore[arg-type]
    assert steering.paused == set()
    assert steering.counts() == (("pause", "timeout", 1),)


def test_the_loop_answers_a_waiting_caller_and_close_refuses_the_rest() -> None:
    steering = Steering()
    held: list[tuple[str, int]] = []

    class Helm:
        ledger = ledger()
        settings = None

        def hold(self, tp: tuple[str, int]) -> None:
            held.append(tp)

    answers: list[Answer] = []
    caller = threading.Thread(target=lambda: answers.append(steering.request("pause", *TP)))
    caller.start()
    while not held:
        steering.step(Helm())  # type: ignore[arg-type]
    caller.join(5)
    assert answers[0].ok and steering.paused == {TP}
    refused = steering.request("resume", "orders", 7, timeout=0.01)
    assert refused.result == "timeout"
    steering.close()
    after = steering.request("pause", *TP)
    assert after.result == "refused" and "not running" in after.message
    names = [(e.action, e.result) for e in steering.events()]
    assert names == [("pause", "ok"), ("resume", "timeout"), ("pause", "refused")]


def test_flow_controls_resume_leaves_an_operators_pause_alone() -> None:
    """A full buffer pauses every partition; when it drains, flow control resumes them,
    all but the one an operator paused meanwhile (in-memory cluster, real loop)."""
    cluster = InMemoryCluster()
    cluster.create_topic("orders", 2)
    for partition in (0, 1):
        for i in range(100):
            cluster.produce("orders", b"%d" % i, partition=partition)
    gate = threading.Event()
    done: list[int] = []

    def handle(record: Record) -> None:
        gate.wait(30)
        done.append(record.partition)

    pc = ParallelConsumer(
        handle,
        bootstrap_servers="memory",
        group_id="g",
        topics=["orders"],
        ordering="partition",
        concurrency=2,
        max_buffered=10,
        kafka=cluster,
    )
    with pc:
        wait(lambda: pc.stats().paused, "the buffer to stall")
        assert pc.control("pause", "orders", 0).ok
        before = pc.stats()
        held = sum(p.queued + p.in_flight for p in before.partitions if p.partition == 0)
        gate.set()
        wait(lambda: done.count(1) == 100, "partition 1 to finish")
        wait(lambda: not pc.stats().paused, "flow control to resume")
        assert done.count(0) <= held  # only what it held before the pause
        assert pc.stats().user_paused == (("orders", 0),)
        assert pc.control("resume", "orders", 0).ok
        wait(lambda: done.count(0) == 100, "partition 0 after the resume")
        pc.stop()


def wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_revoke_drops_the_operators_pause_of_that_partition() -> None:
    steering = Steering()
    steering.paused |= {TP, ("orders", 1)}
    steering.forget([TP])
    assert steering.paused == {("orders", 1)}


def test_a_skipped_running_records_late_success_is_not_counted_twice() -> None:
    """Executors report an all-success chunk as None (no per-record outcomes): the skipped
    record in it must not be finished a second time."""
    book = ledger("unordered")
    runs = book.take()
    stuck = runs[0][0]
    book.skip(stuck)
    held = book.held
    book.completed([stuck], None)  # its handler returned at last
    assert book.held == held and book.counts.processed == 0
    assert not book._overruled  # the stale report ended the overruling


@pytest.mark.parametrize("ordering", ORDERINGS)
@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 250), park=st.booleans())
def test_operator_actions_keep_the_ledgers_guarantees(
    ordering: str, seed: int, steps: int, park: bool
) -> None:
    """Random fetches, runs, failures, retries and acknowledgements, with skips and parks
    of random records in between: the ledger's invariants hold after every step (one run
    per shard, shard order at start and in the offsets, counters equal to states) and
    everything settles at the end (test_ledger.Sim's checks)."""
    rnd = random.Random(seed)
    sim = Sim(
        ordering,
        concurrency=4,
        run_length=2,
        max_attempts=3,
        backoff=0.5,
        failure_policy="dead-letter",
    )
    tps = [("t", 0), ("t", 1)]
    for tp in tps:
        sim.assign(tp)
    acted = 0
    for _ in range(steps):
        action = rnd.random()
        sim.clock.now += rnd.choice([0.0, 0.5, 1.0])
        if action < 0.25:
            tp = rnd.choice(tps)
            if sim.fetch_at[tp] < 40:
                sim.fetch(tp, rnd.randint(1, 5), 3, rnd)
        elif action < 0.45:
            sim.ledger.release_due(sim.clock.now)
            sim.take()
        elif action < 0.65 and sim.runs:
            run = sim.runs.pop(rnd.randrange(len(sim.runs)))
            fail_at = 0 if rnd.random() < 0.3 else None
            sim.report(run, fail_at, [rnd.random() < 0.3 for _ in run])
        elif action < 0.75 and sim.acks:
            sim.handle(sim.ledger.acknowledged(sim.acks.pop(rnd.randrange(len(sim.acks))), None))
        elif action < 0.82 and sim.letters:
            sim.handle(sim.ledger.letter_settled(sim.letters.pop(0), None))
        else:
            tp = rnd.choice(tps)
            entry = sim.ledger.find(tp, rnd.randrange(max(1, sim.fetch_at[tp])))
            if entry is None:
                continue
            try:
                if park and rnd.random() < 0.5:
                    sim.handle(sim.ledger.park(entry, RuntimeError("parked")))
                else:
                    sim.handle(sim.ledger.skip(entry))
                acted += 1
            except ActionRefused:
                pass
        sim.check()
    sim.drain(rnd)
    for entry in sim.entries:
        assert entry.state in (SETTLED, DROPPED), entry
    for tp, part in sim.ledger.parts.items():
        assert part.offsets.position == sim.fetch_at[tp]


def test_find_names_the_current_assignments_copy_of_a_redelivered_record() -> None:
    book = ledger()
    (run,) = book.take()
    old = run[0]
    book.revoking([TP])
    book.close([TP])
    book.assign(TP, 0)
    book.accept([message(*TP, 0, b"k0")])  # type: ignore[list-item]  # redelivered
    again = book.find(TP, 0)
    assert again is not None and again is not old and again.part is book.parts[TP]
    with pytest.raises(ActionRefused, match="ahead of it"):  # the old copy still runs
        book.skip(again)


def test_a_parked_running_records_late_outputs_are_not_sent() -> None:
    """Found by the simulator (seed 7087 --operator): the outputs of a record parked
    while it ran were produced when its handler returned, after a newer record's."""
    book = ledger()
    (run,) = book.take()
    book.park(run[0], RuntimeError("parked"))
    late = book.completed(run, [([("out", b"late", None, None)], None)])
    assert late.send == [] and run[0].state is SENDING


def test_a_running_record_behind_an_older_one_of_its_run_is_refused() -> None:
    """Only the head of a shard: an older record's failure would roll the skipped one
    back to run again while its first run is still out."""
    book = ledger()
    book.scheduler.run_length = 2
    (run,) = book.take()
    assert [e.offset for e in run] == [0, 1]
    with pytest.raises(ActionRefused, match="an older record of its partition"):
        book.skip(run[1])
    book.skip(run[0])
    book.skip(run[1])  # the head now
    assert book.parts[TP].offsets.position == 2
