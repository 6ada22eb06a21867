"""The build users install: the per-record path compiled (setup.py), the pure-Python
source as its fallback, and no stale extension hiding an edit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import parafka
from parafka.build import COMPILED, compiled, module_name, stale

PACKAGE = Path(parafka.__file__).parent


@pytest.mark.skipif(os.environ.get("PARAFKA_PURE") == "1", reason="installed without mypyc")
def test_the_per_record_path_runs_compiled() -> None:
    # `make test` tests what `pip install` builds: the extensions, not the .py beside them
    assert compiled() == [module_name(path) for path in COMPILED]


def test_the_pure_python_source_runs_the_engine_on_its_own(tmp_path: Path) -> None:
    """Without the extensions (PARAFKA_PURE=1, or no C compiler at install) the same
    source runs: the simulator's invariants hold on it."""
    shutil.copytree(PACKAGE, tmp_path / "parafka", ignore=shutil.ignore_patterns("*.so"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONHASHSEED": "0"}
    check = "import parafka.build as b; assert b.compiled() == [], b.compiled()"
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=60)
    sim = [sys.executable, "-m", "parafka.sim", "--seeds", "0:60"]
    done = subprocess.run(sim, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every invariant held" in done.stdout


def test_an_extension_older_than_its_source_is_stale(tmp_path: Path) -> None:
    source = tmp_path / COMPILED[0]
    source.parent.mkdir(parents=True)
    built = source.with_name(source.stem + EXTENSION_SUFFIXES[0])
    built.write_bytes(b"")
    source.write_text("")
    os.utime(built, (1_000_000, 1_000_000))
    assert stale(tmp_path) == [str(built)]
    os.utime(built, None)
    os.utime(source, (1_000_000, 1_000_000))
    assert stale(tmp_path) == []


def test_the_version_says_how_much_runs_compiled(capsys: pytest.CaptureFixture[str]) -> None:
    from parafka.cli import main

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("parafka, version ")
    if compiled():
        assert f"per-record path compiled: {len(compiled())} of {len(COMPILED)} modules" in out
    else:
        assert "pure Python, nothing compiled" in out
