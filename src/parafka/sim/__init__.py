"""`parafka.sim`, kept for users: the simulator lives in `parafka.testing.sim`."""

from parafka.testing.sim import (
    Checker,
    KillWorker,
    SimCompletions,
    SimConfig,
    SimExecutor,
    SimulationFailed,
    SimulationReport,
    Violation,
    World,
    run_seed,
    shortest_failing,
    simulate,
)

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
