"""`parafka.testing.simulate`: a user's handler in the simulated world (docs/testing.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from parafka.core.errors import ConfigError
from parafka.core.seam import Message
from parafka.testing import SimulationFailed, simulate
from tests.handlers.invoice import handle, handle_batch


def one_invoice_per_order(outputs: list[Message]) -> None:
    counts = Counter(json.loads(m.value() or b"")["invoice_for"] for m in outputs)
    twice = sorted(order for order, n in counts.items() if n > 1)
    assert not twice, f"orders invoiced twice: {twice}"


@pytest.mark.parametrize("ordering", ["key", "partition", "unordered"])
def test_a_handler_keeps_every_invariant(ordering: str) -> None:
    report = simulate(handle, seeds=8, ordering=ordering)
    assert report.seeds == 8


def test_a_batch_handler_exactly_once_sees_each_output_once() -> None:
    report = simulate(
        handle_batch,
        seeds=4,
        batch_size=5,
        ordering="partition",
        exactly_once=True,
        check=one_invoice_per_order,
    )
    assert report.seeds == 4


def test_what_the_library_refuses_the_simulator_refuses() -> None:
    """Exactly-once batches need `partition` order (docs/architecture.md): in `unordered`
    order two batches can each hold an older record of one partition and a newer one of
    another, and wait for each other for good (the simulator showed it at seed 3)."""
    with pytest.raises(ConfigError, match="needs ordering='partition'"):
        simulate(handle_batch, seeds=1, batch_size=5, ordering="unordered", exactly_once=True)


def test_a_broken_check_names_the_seed_and_the_shortest_trace() -> None:
    """At-least-once, a crash or a rebalance runs an order again: the user's check that
    each order is invoiced once breaks, and the failure says where."""
    with pytest.raises(SimulationFailed) as caught:
        simulate(handle, seeds=20, check=one_invoice_per_order)
    failure = caught.value
    assert "check: orders invoiced twice" in str(failure)
    assert f"seeds=[{failure.seed}], chaos_events={failure.chaos_events}" in str(failure)
    assert failure.trace and failure.chaos_events < 250


def test_the_setup_hook_runs_before_each_seed() -> None:
    runs: list[int] = []
    simulate(handle, seeds=3, setup=lambda: runs.append(1), failures=False)
    assert runs == [1, 1, 1]


def sim_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m parafka.testing.sim ARGS`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "parafka.testing.sim", *args],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_runs_a_handler_by_name() -> None:
    result = sim_cli("--handler", "tests.handlers.invoice:handle_batch", "--batch-size", "4",
                     "--ordering", "partition", "--exactly-once", "--seeds", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "simulated 3 seed(s)" in result.stdout


def test_the_built_in_handler_refuses_batches_from_a_retry_topic() -> None:
    """It does not model retry-topic records in batches: a usage error, not a false alarm."""
    result = sim_cli("--batch-size", "3", "--retry-topic")
    assert result.returncode == 2
    assert "--retry-topic with --batch-size: pass --handler" in result.stderr


def test_a_shape_the_engine_refuses_is_one_line_and_exit_2() -> None:
    result = sim_cli("--batch-size", "3", "--exactly-once")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "needs ordering='partition'" in result.stderr
