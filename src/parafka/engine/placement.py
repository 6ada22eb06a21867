"""Keeps the control thread and the output thread on one core (core/placement.py decides).

Linux only: a thread's scheduler statistics come from /proc/self/task/<id>/ and its
affinity is set with `os.sched_setaffinity`. Elsewhere, with one allowed core, or once the
system refuses an affinity (a container's policy), it does nothing: the threads run where
the operating system puts them, as with `thread_placement="os"`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection

from parafka.core.placement import WINDOW, Placement, Window
from parafka.executors.affinity import CORES, TASK, schedstat, set_cores, waited_for_core

log = logging.getLogger("parafka")


def _cpu_and_times(thread_id: int) -> tuple[int, int, int]:
    """(core it last ran on, ns it ran, ns it waited runnable for a core) so far."""
    with open(TASK.format(thread_id) + "stat", encoding="ascii") as f:
        # fields after the command (which may hold spaces and parentheses); "processor"
        # is field 39 of proc(5), the 37th after the command
        cpu = int(f.read().rsplit(")", 1)[1].split()[36])
    return (cpu, *schedstat(thread_id))


def _idle_and_total(cores: Collection[int]) -> tuple[int, int]:
    """Clock ticks the given cores were idle, and in all, so far (/proc/stat)."""
    idle = total = 0
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if not line.startswith("cpu") or line[3] == " ":
                continue
            name, *ticks = line.split()
            if int(name[3:]) in cores:
                numbers = [int(t) for t in ticks[:8]]  # user .. steal (guest is in user)
                idle += numbers[3] + numbers[4]  # idle, iowait
                total += sum(numbers)
    return idle, total


class CoreWait:
    """The control loop's seconds waited, runnable, for a core so far, summed over the
    threads that ran it (handover.py may move it to another thread), for the advice
    (observe/advice.py). `read()` is called from the loop's own thread."""

    def __init__(self) -> None:
        self._thread: int | None = None
        self._last = 0.0  # that thread's own count at the last reading
        self.total = 0.0

    def read(self) -> float | None:
        me = threading.get_native_id()
        waited = waited_for_core(me)
        if waited is None:
            return None
        if me == self._thread:
            self.total += max(0.0, waited - self._last)
        self._thread, self._last = me, waited
        return self.total


def supported() -> bool:
    """The system can pin threads and tell where they run (Linux, more than one core)."""
    return len(CORES) > 1 and os.path.exists(TASK.format(os.getpid()))


class ThreadPlacement:
    """Called by the control loop (from its own thread) every few hundred milliseconds;
    every `WINDOW` seconds it measures both threads and applies `Placement`'s move.
    `partner()` gives the output thread's native id once it runs (None before)."""

    def __init__(self, partner: Callable[[], int | None], clock: Callable[[], float]) -> None:
        self._partner = partner
        self._clock = clock
        self._control = threading.get_native_id()
        self.placement = Placement()
        self._at = clock()
        # at the last look: the control thread's ns waiting for a core, the partner's ns run
        self._last: tuple[int, int] | None = None
        self._ticks = self._machine()
        self.enabled = True
        # seconds the output thread ran while both were pinned to one core: what the
        # control thread waits for its core by design (CoreWait's readers take it off)
        self.shared = 0.0

    def _machine(self) -> tuple[int, int]:
        try:
            return _idle_and_total(CORES)
        except (OSError, ValueError, IndexError):
            return (0, 0)

    def check(self) -> None:
        now = self._clock()
        if not self.enabled or now - self._at < WINDOW:
            return
        partner = self._partner()
        if partner is None:
            return  # no output thread yet: nothing takes turns with the control thread
        me = threading.get_native_id()
        if me != self._control:  # the loop went on on another thread (handover.py)
            self.close()
            self._control, self._last, self.placement = me, None, Placement()
        try:
            cpu, _, waited = _cpu_and_times(self._control)
            _, partner_ran, _ = _cpu_and_times(partner)
        except (OSError, ValueError, IndexError):
            self.enabled = False  # statistics not readable here: leave the threads be
            return
        # the first look is its own baseline: nothing waited or ran yet
        last = self._last or (waited, partner_ran)
        self._last = (waited, partner_ran)
        elapsed, self._at = now - self._at, now
        if self.placement.pinned is not None:
            self.shared += (partner_ran - last[1]) / 1e9
        ticks, (idle, total) = self._ticks, self._machine()
        self._ticks = (idle, total)
        spare = 1.0
        if total > ticks[1]:  # idle cores over the window, of the process's
            spare = (idle - ticks[0]) / (total - ticks[1]) * len(CORES)
        window = Window(
            cpu,
            (waited - last[0]) / 1e9 / elapsed,
            (partner_ran - last[1]) / 1e9 / elapsed,
            spare,
        )
        move = self.placement.step(window)
        if move is None:
            return
        cores = CORES if move[1] is None else {move[1]}
        if not all(set_cores(thread_id, cores) for thread_id in (self._control, partner)):
            log.debug("thread placement left to the system: it refused core(s) %s", cores)
            self.enabled = False
            self._free(partner)
            return
        if move[0] == "free":
            log.debug(
                "control and output threads set free from core %s (%.0f%% of its cores idle, "
                "the control thread waited %.0f%% of the time)",
                window.cpu,
                100 * window.idle / len(CORES),
                100 * window.control_waited,
            )

    def close(self) -> None:
        """Set the threads free again (the control thread goes on as the caller's)."""
        if self.placement.pinned is not None:
            self._free(self._partner())

    def _free(self, partner: int | None) -> None:
        for thread_id in (self._control, partner):
            if thread_id is not None:
                set_cores(thread_id, CORES)  # refused: the thread has ended
