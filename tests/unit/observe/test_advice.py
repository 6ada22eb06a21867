"""advice.py: each suggestion once, and only when the numbers show it would help."""

from __future__ import annotations

import gc

from parafka.core.gctuning import GcTimer
from parafka.observe.advice import CORE_WAIT, MIN_RECORDS, WINDOW, Advisor, Sample


def feed(
    advisor: Advisor,
    busy: float,
    load: float,
    rate: float,
    seconds: float,
    gc_share: float = 0.0,
    gc_tuned: bool = True,
    handler: float = 7e-6,
) -> list[str]:
    """Samples every 0.25 s of a process using `busy` of a core at `rate` records/s,
    `gc_share` of the time in garbage collections."""
    said = []
    for step in range(int(seconds / 0.25) + 1):
        at = step * 0.25
        sample = Sample(at, busy * at, int(rate * at), load, handler, gc_share * at, gc_tuned)
        said.extend(advisor.sample(sample))
    return said


def batching(cores: int, executor: str = "thread") -> Advisor:
    """An advisor of a consumer with a batch handler: the batch rule stays out of the way."""
    return Advisor(cores, executor, batched=True)


def test_a_cpu_bound_thread_consumer_with_an_idle_core_is_told_once() -> None:
    said = feed(batching(2), busy=0.97, load=1.0, rate=40_000, seconds=3 * WINDOW)
    assert len(said) == 1
    assert "--processes auto` (2 here" in said[0] and "40,000 records/s" in said[0]
    assert "7 us" in said[0]


def test_no_processes_advice_when_it_would_not_help() -> None:
    assert not feed(batching(2), 0.5, 1.0, 40_000, 3 * WINDOW)  # not CPU-bound
    assert not feed(batching(2), 0.97, 1.9, 40_000, 3 * WINDOW)  # no idle core
    assert not feed(batching(1), 0.97, 0.0, 40_000, 3 * WINDOW)  # one core
    assert not feed(batching(2, "ProcessExecutor"), 0.97, 1.0, 40_000, 3 * WINDOW)
    assert not feed(batching(2), 0.97, 1.0, MIN_RECORDS / WINDOW / 2, 3 * WINDOW)
    assert not feed(batching(2), 0.97, 1.0, 40_000, WINDOW / 2)  # too soon


def test_garbage_collection_with_the_default_thresholds_is_pointed_out_once() -> None:
    advisor = batching(1)
    said = feed(advisor, 0.5, 0.0, 40_000, 3 * WINDOW, gc_share=0.15, gc_tuned=False)
    assert len(said) == 1 and "tune_gc()" in said[0] and "15%" in said[0]
    assert advisor.given == said
    assert not feed(batching(1), 0.5, 0.0, 40_000, 3 * WINDOW, 0.15, gc_tuned=True)
    assert not feed(batching(1), 0.5, 0.0, 40_000, 3 * WINDOW, 0.05, gc_tuned=False)


def test_both_rules_are_said_one_after_the_other() -> None:
    advisor = batching(2)
    said = feed(advisor, 0.97, 1.0, 40_000, 3 * WINDOW, gc_share=0.2, gc_tuned=False)
    assert len(said) == 2 and "--processes" in said[0] and "tune_gc" in said[1]


def test_the_window_starts_again_after_a_pause() -> None:
    advisor = batching(2)
    advisor.sample(Sample(0.0, 0.0, 0, 1.0))
    advisor.sample(Sample(5.0, 0.1, 0, 1.0))  # nothing processed: the window restarts
    assert advisor.sample(Sample(5.0 + WINDOW - 1, 9.0, 400_000, 1.0)) == []
    assert advisor.sample(Sample(5.0 + WINDOW, 9.9, 440_000, 1.0)) != []


def test_the_gc_timer_adds_up_collections_while_installed() -> None:
    timer = GcTimer()
    timer.install()
    try:
        gc.collect()
    finally:
        timer.remove()
    assert timer.total > 0 and timer not in gc.callbacks


def test_a_per_record_handler_smaller_than_the_engine_s_work_is_pointed_to_batches() -> None:
    # 40,000 records/s on 97% of a core: 24 us of CPU a record, 7 of them in the handler
    advisor = Advisor(2, "thread")
    said = feed(advisor, 0.97, 1.9, 40_000, 3 * WINDOW)  # no idle core: no --processes
    assert len(said) == 1 and "--batch-size 1000" in said[0]
    assert "7 us a record" in said[0] and "24 us of CPU a record" in said[0]


def test_no_batch_advice_when_it_would_not_help() -> None:
    assert not feed(batching(2), 0.97, 1.9, 40_000, 3 * WINDOW)
    assert not feed(Advisor(2, "thread"), 0.5, 1.9, 40_000, 3 * WINDOW)  # not CPU-bound
    # the handler is most of the work: batching shares little
    assert not feed(Advisor(2, "thread"), 0.97, 1.9, 40_000, 3 * WINDOW, handler=20e-6)


def test_processes_then_batches_for_a_cpu_bound_per_record_handler() -> None:
    said = feed(Advisor(2, "thread"), 0.97, 1.0, 40_000, 3 * WINDOW)
    assert len(said) == 2 and "--processes auto" in said[0] and "--batch-size" in said[1]


def waiting(advisor: Advisor, share: float, seconds: float, rate: float = 40_000) -> list[str]:
    """A process whose control thread waits for a core `share` of the time."""
    said = []
    for step in range(int(seconds / 0.25) + 1):
        at = step * 0.25
        sample = Sample(at, 0.5 * at, int(rate * at), 2.0, None, 0.0, True, share * at)
        said.extend(advisor.sample(sample))
    return said


def test_a_control_thread_waiting_for_a_core_is_told_no_setting_would_help() -> None:
    advisor = batching(2)
    said = waiting(advisor, CORE_WAIT + 0.1, 3 * WINDOW)
    assert len(said) == 1 and "waited for a core 35%" in said[0]
    assert "more processes or threads would not run faster" in said[0]
    assert not waiting(batching(2), CORE_WAIT - 0.1, 3 * WINDOW)  # the cores have room
    assert not waiting(batching(2), 0.5, 3 * WINDOW, rate=MIN_RECORDS / WINDOW / 2)  # idle
    unmeasured = Sample(0.0, 0.0, 0, 2.0), Sample(WINDOW, 5.0, 100_000, 2.0)
    assert not [line for s in unmeasured for line in batching(2).sample(s)]
