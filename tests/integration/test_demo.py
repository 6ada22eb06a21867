"""`python -m examples.demo --quick` (what `make demo` runs) end to end on the test broker,
as a user runs it (a real process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from parafka.testing import LocalBroker

from .test_cli import cli_env
from .test_examples import anomaly_model  # noqa: F401  (a fixture: a small model, quickly)

ROOT = Path(__file__).resolve().parents[2]
# The local broker's quick settings (examples.demo.kafka.LOCAL_SETTINGS), given as a user would.
LOCAL = ["-X", "session.timeout.ms=3000", "-X", "heartbeat.interval.ms=300",
         "-X", "fetch.wait.max.ms=10"]  # fmt: skip


def demo(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.demo", *args],
        capture_output=True,
        text=True,
        env=cli_env(COLUMNS="200"),
        cwd=cwd,
        timeout=timeout,
    )


def test_quick_demo_plays_every_scene_and_every_check_passes(
    broker: LocalBroker,
    anomaly_model: Path,  # noqa: F811
) -> None:
    result = demo(["--quick", "-b", broker.bootstrap_servers, *LOCAL], ROOT, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "every check passed" in out
    assert "skipped" not in out and "error" not in out
    for title in (
        "IO-bound jobs",
        "md5 transformer",
        "anomaly detector",
        "few partitions",
        "two consumer groups",
    ):
        assert title in out
    assert "order per key: held" in out and "every event: an output, right hash" in out


def test_parafka_demo_says_where_the_demo_lives(tmp_path: Path) -> None:
    """The installed library carries no demo: `parafka demo` (any options) is one line
    naming `make demo`, exit code 2, wherever it runs."""
    result = subprocess.run(
        [sys.executable, "-m", "parafka.cli", "demo", "--quick", "--scene", "md5"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `make demo`" in lines[0], result.stderr


def test_an_unreachable_cluster_is_one_error_line() -> None:
    result = demo(["-b", "127.0.0.1:1", "--connect-timeout", "2"], ROOT, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("parafka: error:")]
    assert len(lines) == 1 and "cannot reach Kafka at 127.0.0.1:1" in lines[0], result.stderr
