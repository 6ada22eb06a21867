"""The engine under the deterministic simulator: 2,000 seeded schedules of rebalances,
crashes, expired sessions, failing and hanging handlers, worker deaths, refused commits
and deliveries; every invariant of parafka.sim.checks after every step.

Each part runs in a subprocess with PYTHONHASHSEED=0, so a failing seed replays exactly
with the command it prints (`python -m parafka.sim --seed N --chaos K`).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PARTS = 4
SEEDS_PER_PART = 500


@pytest.mark.parametrize("part", range(PARTS))
def test_every_invariant_holds_on_every_seed(part: int) -> None:
    first = part * SEEDS_PER_PART
    result = subprocess.run(
        [sys.executable, "-m", "parafka.sim", "--seeds", f"{first}:{first + SEEDS_PER_PART}"],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"simulated {SEEDS_PER_PART} seed(s)" in result.stdout


@pytest.mark.parametrize(
    ("flags", "first"),
    [
        pytest.param(["--key-rate", "20"], 5000, id="key-rate"),
        pytest.param(["--adaptive"], 6000, id="adaptive-concurrency"),
    ],
)
def test_every_invariant_holds_with_the_pacer_at_work(flags: list[str], first: int) -> None:
    """The same kind of schedules with records waiting for their key's rate (the ledger's
    rate_wait transition, hundreds per 30 seeds) or with concurrency="auto" (the dispatch
    window moving between 1 and the executor's capacity), among the rebalances and crashes."""
    seeds = f"{first}:{first + 300}"
    result = subprocess.run(
        [sys.executable, "-m", "parafka.sim", "--seeds", seeds, *flags],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "simulated 300 seed(s)" in result.stdout
