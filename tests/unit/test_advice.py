"""advice.py: the --processes suggestion, only when the numbers show it."""

from __future__ import annotations

from parafka.advice import MIN_RECORDS, WINDOW, Advisor, Sample


def feed(advisor: Advisor, busy: float, load: float, rate: float, seconds: float) -> list[str]:
    """Samples every 0.25 s of a process using `busy` of a core at `rate` records/s."""
    said = []
    for step in range(int(seconds / 0.25) + 1):
        at = step * 0.25
        line = advisor.sample(Sample(at, busy * at, int(rate * at), load, 7e-6))
        if line is not None:
            said.append(line)
    return said


def test_a_cpu_bound_thread_consumer_with_an_idle_core_is_told_once() -> None:
    said = feed(Advisor(2, "thread"), busy=0.97, load=1.0, rate=40_000, seconds=3 * WINDOW)
    assert len(said) == 1
    assert "--processes 2" in said[0] and "40,000 records/s" in said[0] and "7 us" in said[0]


def test_no_advice_when_it_would_not_help() -> None:
    assert not feed(Advisor(2, "thread"), 0.5, 1.0, 40_000, 3 * WINDOW)  # not CPU-bound
    assert not feed(Advisor(2, "thread"), 0.97, 1.9, 40_000, 3 * WINDOW)  # no idle core
    assert not feed(Advisor(1, "thread"), 0.97, 0.0, 40_000, 3 * WINDOW)  # one core
    assert not feed(Advisor(2, "ProcessExecutor"), 0.97, 1.0, 40_000, 3 * WINDOW)
    assert not feed(Advisor(2, "thread"), 0.97, 1.0, MIN_RECORDS / WINDOW / 2, 3 * WINDOW)
    assert not feed(Advisor(2, "thread"), 0.97, 1.0, 40_000, WINDOW / 2)  # too soon


def test_the_window_starts_again_after_a_pause() -> None:
    advisor = Advisor(2, "thread")
    advisor.sample(Sample(0.0, 0.0, 0, 1.0))
    advisor.sample(Sample(5.0, 0.1, 0, 1.0))  # nothing processed: the window restarts
    assert advisor.sample(Sample(5.0 + WINDOW - 1, 9.0, 400_000, 1.0)) is None
    assert advisor.sample(Sample(5.0 + WINDOW, 9.9, 440_000, 1.0)) is not None
