"""advice.py: each suggestion once, and only when the numbers show it would help."""

from __future__ import annotations

import gc

from parafka.core.gctuning import GcTimer
from parafka.observe.advice import MIN_RECORDS, WINDOW, Advisor, Sample


def feed(
    advisor: Advisor,
    busy: float,
    load: float,
    rate: float,
    seconds: float,
    gc_share: float = 0.0,
    gc_tuned: bool = True,
) -> list[str]:
    """Samples every 0.25 s of a process using `busy` of a core at `rate` records/s,
    `gc_share` of the time in garbage collections."""
    said = []
    for step in range(int(seconds / 0.25) + 1):
        at = step * 0.25
        sample = Sample(at, busy * at, int(rate * at), load, 7e-6, gc_share * at, gc_tuned)
        if (line := advisor.sample(sample)) is not None:
            said.append(line)
    return said


def test_a_cpu_bound_thread_consumer_with_an_idle_core_is_told_once() -> None:
    said = feed(Advisor(2, "thread"), busy=0.97, load=1.0, rate=40_000, seconds=3 * WINDOW)
    assert len(said) == 1
    assert "--processes 2" in said[0] and "40,000 records/s" in said[0] and "7 us" in said[0]


def test_no_processes_advice_when_it_would_not_help() -> None:
    assert not feed(Advisor(2, "thread"), 0.5, 1.0, 40_000, 3 * WINDOW)  # not CPU-bound
    assert not feed(Advisor(2, "thread"), 0.97, 1.9, 40_000, 3 * WINDOW)  # no idle core
    assert not feed(Advisor(1, "thread"), 0.97, 0.0, 40_000, 3 * WINDOW)  # one core
    assert not feed(Advisor(2, "ProcessExecutor"), 0.97, 1.0, 40_000, 3 * WINDOW)
    assert not feed(Advisor(2, "thread"), 0.97, 1.0, MIN_RECORDS / WINDOW / 2, 3 * WINDOW)
    assert not feed(Advisor(2, "thread"), 0.97, 1.0, 40_000, WINDOW / 2)  # too soon


def test_garbage_collection_with_the_default_thresholds_is_pointed_out_once() -> None:
    advisor = Advisor(1, "thread")
    said = feed(advisor, 0.5, 0.0, 40_000, 3 * WINDOW, gc_share=0.15, gc_tuned=False)
    assert len(said) == 1 and "tune_gc()" in said[0] and "15%" in said[0]
    assert advisor.given == said
    assert not feed(Advisor(1, "thread"), 0.5, 0.0, 40_000, 3 * WINDOW, 0.15, gc_tuned=True)
    assert not feed(Advisor(1, "thread"), 0.5, 0.0, 40_000, 3 * WINDOW, 0.05, gc_tuned=False)


def test_both_rules_are_said_one_after_the_other() -> None:
    advisor = Advisor(2, "thread")
    said = feed(advisor, 0.97, 1.0, 40_000, 3 * WINDOW, gc_share=0.2, gc_tuned=False)
    assert len(said) == 2 and "--processes" in said[0] and "tune_gc" in said[1]


def test_the_window_starts_again_after_a_pause() -> None:
    advisor = Advisor(2, "thread")
    advisor.sample(Sample(0.0, 0.0, 0, 1.0))
    advisor.sample(Sample(5.0, 0.1, 0, 1.0))  # nothing processed: the window restarts
    assert advisor.sample(Sample(5.0 + WINDOW - 1, 9.0, 400_000, 1.0)) is None
    assert advisor.sample(Sample(5.0 + WINDOW, 9.9, 440_000, 1.0)) is not None


def test_the_gc_timer_adds_up_collections_while_installed() -> None:
    timer = GcTimer()
    timer.install()
    try:
        gc.collect()
    finally:
        timer.remove()
    assert timer.total > 0 and timer not in gc.callbacks
