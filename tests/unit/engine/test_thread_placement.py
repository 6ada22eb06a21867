"""The control and output threads kept on one core (engine/placement.py), with the system's
own calls: Linux, two cores or more."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from parafka.core.placement import CONTENDED, WINDOW
from parafka.engine import placement
from parafka.engine.placement import ThreadPlacement, supported
from parafka.executors import affinity

pytestmark = pytest.mark.skipif(not supported(), reason="needs Linux and two cores or more")
_READ_IDLE = placement._idle_and_total  # before the fixture below stands in for it


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's cores all idle between two looks (the tests run beside others: the
    real figure would say busy, and nothing would be pinned)."""
    ticks = [0]

    def idle(_cores: set[int]) -> tuple[int, int]:
        ticks[0] += 100
        return ticks[0], ticks[0]

    monkeypatch.setattr(placement, "_idle_and_total", idle)


@pytest.fixture
def partner() -> Iterator[threading.Thread]:
    """A thread standing for the output thread; this test's thread stands for the control
    thread (its affinity restored afterwards)."""
    allowed = os.sched_getaffinity(0)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="partner", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        os.sched_setaffinity(threading.get_native_id(), allowed)
        stop.set()
        thread.join()


def test_both_threads_are_pinned_to_one_core_after_a_window_then_freed_on_contention(
    partner: threading.Thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = os.sched_getaffinity(0)
    now = [0.0]
    placed = ThreadPlacement(lambda: partner.native_id, lambda: now[0])
    me = threading.get_native_id()
    placed.check()  # within the first window: nothing yet
    assert os.sched_getaffinity(me) == allowed == os.sched_getaffinity(partner.native_id)
    now[0] += WINDOW
    placed.check()
    core = placed.placement.pinned
    assert core is not None and core in allowed
    assert os.sched_getaffinity(me) == {core} == os.sched_getaffinity(partner.native_id)

    # Another process takes the core: the control thread waits for it far longer than the
    # output thread runs. Both are set free (the process's cores).
    real = placement._cpu_and_times

    def contended(thread_id: int) -> tuple[int, int, int]:
        cpu, ran, waited = real(thread_id)
        extra = int((CONTENDED + 0.5) * WINDOW * 1e9) if thread_id == me else 0
        return cpu, ran, waited + extra

    monkeypatch.setattr(placement, "_cpu_and_times", contended)
    now[0] += WINDOW
    placed.check()
    assert placed.placement.pinned is None and placed.placement.moves == 1
    assert os.sched_getaffinity(me) == allowed == os.sched_getaffinity(partner.native_id)


def test_close_sets_pinned_threads_free(partner: threading.Thread) -> None:
    allowed = os.sched_getaffinity(0)
    now = [0.0]
    placed = ThreadPlacement(lambda: partner.native_id, lambda: now[0])
    now[0] += WINDOW
    placed.check()
    assert len(os.sched_getaffinity(partner.native_id)) == 1
    placed.close()
    me = threading.get_native_id()
    assert os.sched_getaffinity(me) == allowed == os.sched_getaffinity(partner.native_id)


def test_the_machine_s_idle_cores_are_read_from_the_system() -> None:
    cores = os.sched_getaffinity(0)
    idle, total = _READ_IDLE(cores)
    assert 0 <= idle <= total and total > 0


def test_without_an_output_thread_nothing_is_pinned() -> None:
    allowed = os.sched_getaffinity(0)
    now = [0.0]
    placed = ThreadPlacement(lambda: None, lambda: now[0])
    now[0] += 2 * WINDOW
    placed.check()
    assert placed.placement.pinned is None
    assert os.sched_getaffinity(threading.get_native_id()) == allowed


def test_a_thread_started_from_a_pinned_thread_gets_the_process_cores(
    partner: threading.Thread,
) -> None:
    # A new thread inherits its creator's affinity: what the control thread starts once
    # pinned (a client's threads, the stand-by thread) must not be held to its core.
    allowed = os.sched_getaffinity(0)
    me = threading.get_native_id()
    os.sched_setaffinity(me, {min(allowed)})
    seen: list[set[int]] = []

    def look() -> None:
        seen.append(os.sched_getaffinity(0))

    with affinity.unpinned():
        thread = threading.Thread(target=look)
        thread.start()
    thread.join()
    inherited = threading.Thread(target=look)
    inherited.start()
    inherited.join()
    assert seen == [allowed, {min(allowed)}]
    assert os.sched_getaffinity(me) == {min(allowed)}  # the caller's pin is back


def test_the_loop_going_on_on_another_thread_is_placed_instead(
    partner: threading.Thread,
) -> None:
    # handover.py: a stand-by thread may take the loop over from a hung control thread;
    # the placement follows the thread that calls it and frees the one it left.
    allowed = os.sched_getaffinity(0)
    now = [0.0]
    placed = ThreadPlacement(lambda: partner.native_id, lambda: now[0])
    now[0] += WINDOW
    placed.check()
    old = threading.get_native_id()
    assert len(os.sched_getaffinity(old)) == 1
    cores: list[set[int]] = []

    def go_on() -> None:
        now[0] += WINDOW
        placed.check()  # adopts this thread: the old one and the partner are set free
        cores.append(os.sched_getaffinity(old))
        now[0] += WINDOW
        placed.check()  # pinned again, this thread with the partner
        cores.append(os.sched_getaffinity(threading.get_native_id()))
        cores.append(os.sched_getaffinity(partner.native_id))
        placed.close()

    standby = threading.Thread(target=go_on)
    standby.start()
    standby.join()
    assert cores[0] == allowed
    assert len(cores[1]) == 1 and cores[1] == cores[2]


def test_the_output_thread_s_run_time_while_pinned_is_counted_as_shared(
    partner: threading.Thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the control thread waits for its core by design, for the advice to take off.
    real = placement._cpu_and_times
    ran = [0]

    def partner_runs(thread_id: int) -> tuple[int, int, int]:
        cpu, own, waited = real(thread_id)
        return (cpu, ran[0], waited) if thread_id == partner.native_id else (cpu, own, waited)

    monkeypatch.setattr(placement, "_cpu_and_times", partner_runs)
    now = [0.0]
    placed = ThreadPlacement(lambda: partner.native_id, lambda: now[0])
    now[0] += WINDOW
    ran[0] = 300_000_000
    placed.check()  # the first look: pinned now, nothing shared before it
    assert placed.placement.pinned is not None and placed.shared == 0.0
    now[0] += WINDOW
    ran[0] += 200_000_000
    placed.check()
    assert placed.shared == pytest.approx(0.2)
    placed.close()


def test_the_loop_s_wait_for_a_core_is_read_and_summed_over_its_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waited = {threading.get_native_id(): 2.0}
    monkeypatch.setattr(placement, "waited_for_core", lambda thread_id: waited.get(thread_id))
    wait = placement.CoreWait()
    assert wait.read() == 0.0  # the first reading is the baseline
    waited[threading.get_native_id()] = 2.5
    assert wait.read() == pytest.approx(0.5)
    seen: list[float | None] = []

    def go_on() -> None:  # the loop goes on on another thread (handover.py)
        me = threading.get_native_id()
        waited[me] = 7.0
        seen.append(wait.read())  # that thread's own past is not the loop's
        waited[me] = 7.25
        seen.append(wait.read())

    other = threading.Thread(target=go_on)
    other.start()
    other.join()
    assert seen == [pytest.approx(0.5), pytest.approx(0.75)]


def test_a_thread_s_wait_for_a_core_comes_from_the_system() -> None:
    waited = placement.waited_for_core(threading.get_native_id())
    assert waited is not None and waited >= 0.0
    assert placement.waited_for_core(2**31 - 1) is None  # no such thread
