"""Where the control and output threads run (core/placement.py): the decisions, no system."""

from __future__ import annotations

from parafka.core.placement import BUSY, CONTENDED, FREE_WINDOWS, SPARE, Placement, Window


def test_the_first_look_pins_both_threads_to_the_core_the_control_thread_ran_on() -> None:
    placement = Placement()
    assert placement.step(Window(cpu=1, control_waited=0.0, outputs_ran=0.0)) == ("pin", 1)
    assert placement.pinned == 1


def test_waiting_while_the_output_thread_runs_on_the_shared_core_is_no_contention() -> None:
    # Pinned together, the control thread waits for the core while the output thread runs:
    # measured with an md5 handler, 20% and 20% of the window.
    placement = Placement()
    placement.step(Window(1, 0.0, 0.0))
    for _ in range(10):
        assert placement.step(Window(1, control_waited=0.30, outputs_ran=0.25)) is None
    assert placement.pinned == 1 and placement.moves == 0


def test_a_core_another_process_contends_for_sets_the_threads_free_then_they_follow_the_system(
) -> None:  # fmt: skip
    placement = Placement()
    placement.step(Window(0, 0.0, 0.0))
    waited = 0.20 + CONTENDED + 0.01  # beyond the output thread's 20%
    assert placement.step(Window(0, control_waited=waited, outputs_ran=0.20)) == ("free", None)
    assert placement.pinned is None and placement.moves == 1
    # free for a few windows: the system moves the threads where there is room
    for _ in range(FREE_WINDOWS):
        assert placement.step(Window(1, 0.0, 0.0)) is None
    # then pinned again, where the control thread now runs
    assert placement.step(Window(1, 0.0, 0.0)) == ("pin", 1)
    assert placement.pinned == 1


def test_without_a_core_to_spare_the_system_places_the_threads() -> None:
    # Two busy parafka processes on two cores: pinned, they measured slower.
    placement = Placement()
    assert placement.step(Window(0, 0.0, 0.0, idle=SPARE - 0.1)) is None
    assert placement.pinned is None
    assert placement.step(Window(0, 0.0, 0.0, idle=SPARE)) == ("pin", 0)


def test_pinned_threads_are_set_free_once_the_machine_is_busy() -> None:
    placement = Placement()
    placement.step(Window(0, 0.0, 0.0, idle=1.5))
    assert placement.step(Window(0, 0.2, 0.2, idle=BUSY + 0.05)) is None  # between: stay
    assert placement.step(Window(0, 0.2, 0.2, idle=BUSY - 0.05)) == ("free", None)
    assert placement.pinned is None and placement.moves == 0  # not a contended core
    assert placement.step(Window(1, 0.0, 0.0, idle=SPARE)) == ("pin", 1)  # room again
