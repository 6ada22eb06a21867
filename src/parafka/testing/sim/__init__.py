"""The deterministic simulator: the real engine, many consumers, an in-memory cluster, a
virtual clock, seeded schedules of faults, and invariants checked after every step.

`python -m parafka.sim --seeds 2000` runs seeds 0..1999; a failing seed is printed with
the shortest chaos phase that still fails and the trace of its last events, and replays
with `python -m parafka.sim --seed N --chaos K` (PYTHONHASHSEED=0, which the command sets).
"""

from parafka.testing.sim.checks import Checker, Violation
from parafka.testing.sim.executor import KillWorker, SimCompletions, SimExecutor
from parafka.testing.sim.user import SimulationFailed, SimulationReport, simulate
from parafka.testing.sim.world import SimConfig, World, run_seed, shortest_failing

__all__ = [
    "Checker",
    "KillWorker",
    "SimCompletions",
    "SimConfig",
    "SimExecutor",
    "SimulationFailed",
    "SimulationReport",
    "Violation",
    "World",
    "run_seed",
    "shortest_failing",
    "simulate",
]
