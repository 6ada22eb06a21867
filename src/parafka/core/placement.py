"""Where the threads that take turns with the GIL run: on one core, unless it is contended. Pure.

CPython runs one thread's bytecode at a time. parafka's control thread and its output thread
(engine/outputs.py) hand the GIL to each other many times a millisecond: the output thread
takes it for each record it produces and for each delivery report the client serves. When
the operating system puts the two threads on different cores, every hand-over wakes the
other core, and the records, outputs and client messages one thread made are read and freed
from the other core's cache. On one core the same work ran 12-42% faster in six
alternated pairs (benchmarks/profile_engine.py, md5 handler: docs/architecture.md, "The
threads that share the GIL on one core").

So the engine pins both threads to the core the control thread last ran on, and looks again
every `WINDOW` seconds. Only while the machine has a core to spare (`SPARE` of one idle
over the window, among the process's cores): when its cores are all busy (two parafka
processes on two cores, say), the system's freedom to move threads where there is room
counts for more, and `--processes 2` measured 3% and 9% slower pinned (RESULTS.md,
"thirteenth stop"); below `BUSY` the threads are set free again.

Pinned, the control thread waits for its core while the output thread runs (they share
it); it waiting longer than that, by more than `CONTENDED` of the
window, means another process wants the core: the threads are set free (the process's
allowed cores) for `FREE_WINDOWS` windows, the system moves them where there is room, and
they are pinned again where the control thread then runs.

`Placement.step` makes that decision from what the I/O shell (engine/placement.py) measured;
the shell reads the threads' scheduler statistics and sets their affinity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WINDOW = 1.0  # seconds between two looks
# Share of a window the control thread waited, runnable, for a core, beyond the time the
# output thread ran (pinned together, it waits while that one runs): another process
# contends for the core. Pinned with an md5 handler, waits and runs matched within 3% of
# the window (20% / 20%, 19% / 20%).
CONTENDED = 0.15
FREE_WINDOWS = 5  # windows the threads stay free after a contended one
# Idle cores (of the process's) over a window: pin with this many or more, set free below
# BUSY. One md5 process on two cores left 0.7 idle; two of them, none.
SPARE = 0.5
BUSY = 0.25

PLACEMENTS = ("together", "os")  # thread_placement=: pinned to one core, or as the OS places


@dataclass(frozen=True)
class Window:
    """What one window showed: the core the control thread last ran on, the shares of the
    window the control thread waited for a core and the output thread ran, and how many of
    the process's cores were idle on average."""

    cpu: int
    control_waited: float
    outputs_ran: float
    idle: float = 1.0


Move = tuple[Literal["pin"], int] | tuple[Literal["free"], None]


class Placement:
    """The decisions: pin both threads to a core, or set them free (see the module)."""

    def __init__(self) -> None:
        self.pinned: int | None = None  # the core both threads are pinned to
        self._free_for = 0  # windows left before pinning again
        self.moves = 0  # how many times the threads were set free (a contended core)

    def step(self, window: Window) -> Move | None:
        """The move to make after `window`, if any."""
        if self.pinned is None:
            if self._free_for > 0:
                self._free_for -= 1
                return None
            if window.idle < SPARE:
                return None  # no core to spare: the system places the threads
            self.pinned = window.cpu
            return ("pin", window.cpu)
        if window.control_waited - window.outputs_ran > CONTENDED:
            self.pinned = None
            self._free_for = FREE_WINDOWS
            self.moves += 1
            return ("free", None)
        if window.idle < BUSY:
            self.pinned = None
            return ("free", None)
        return None
