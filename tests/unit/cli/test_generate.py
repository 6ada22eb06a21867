"""`parafka produce --generate`'s generators: the sleep jobs and the example's web log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from parafka.cli.generate import generator
from parafka.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_sleep_jobs_are_keyed_and_within_the_range() -> None:
    pairs = list(generator("sleep:10:30")(200, 7, 1))
    assert len(pairs) == 200
    assert {key for key, _ in pairs} == {b"customer-%d" % k for k in range(7)}
    millis = [float(value.split(b":")[1]) for _, value in pairs]
    assert all(10 <= ms <= 30 for ms in millis)
    assert pairs == list(generator("sleep:10:30")(200, 7, 1))  # the same seed, the same jobs


def test_weblog_comes_from_the_example_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")
    monkeypatch.chdir(ROOT)
    pairs = list(generator("weblog")(50, 0, 3))
    assert len(pairs) == 50 and all(key and value.startswith(b"{") for key, value in pairs)


def test_weblog_outside_a_checkout_is_one_error_naming_the_fix(tmp_path: Path) -> None:
    code = (
        "from parafka.cli.generate import generator\n"
        "from parafka.core.errors import ConfigError\n"
        "try:\n"
        "    list(generator('weblog')(5, 0, 1))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert "run it from the root of a parafka checkout" in result.stdout, result.stderr


def test_an_unknown_generator_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="weblog"):
        generator("nope")
