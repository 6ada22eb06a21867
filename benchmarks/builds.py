"""Two builds of parafka side by side: an earlier commit's against the working tree's, on
issue 14's md5 scoreboard (per_record.py), beside the plain loops, alternated round by round.

On this machine a change counts only when measured against its baseline in the same run
(docs/architecture.md, "Measuring it right"): the speed of the cores drifts by a third
between minutes. A change to the compiled per-record path cannot be switched on and off
inside one build, so this builds `--base` (a git revision) into a temporary worktree,
compiled like an install (`setup.py build_ext --inplace`), and starts each configuration's
members twice per round: once importing that build, once the working tree's. A member
imports the earlier build when PARAFKA_BUILD names its source folder: the members are
spawned processes, which import this module again before their work, so the folder goes
to the front of their path before anything imports parafka.

Configurations: parafka's defaults with the per-record handler, in each `--orderings`,
with `--members` processes (1: beside one plain loop; 2: beside two, as `--processes 2`).

Usage: python benchmarks/builds.py --base REV [--members 1|2] [--orderings key,unordered]
                                   [--rounds R] [--records N] [--cpu] [--broker local|kafka]
"""

from __future__ import annotations

import os
import sys

if os.environ.get("PARAFKA_BUILD"):  # a member of the earlier build, starting
    sys.path.insert(0, os.environ["PARAFKA_BUILD"])

import argparse
import multiprocessing
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import per_record as pr
from common import note

ROOT = Path(__file__).resolve().parent.parent
ENV = "PARAFKA_BUILD"


def _members(build: str | None, members: int, settings: dict[str, Any]) -> pr.Run:
    """per_record's parafka run, its members importing `build` (a source folder), or the
    working tree's build."""
    run_parafka = pr._parafka(members, pr.PER_RECORD, **settings)
    return run_parafka if build is None else pr.with_environment(run_parafka, {ENV: build})


def _build(revision: str, where: Path) -> Path:
    """`revision` checked out at `where` and compiled in place; its source folder."""
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(where), revision], check=True)
    note(f"compiling {revision} in {where}")
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=where,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return where / "src"


def _imported(found: Any) -> None:
    import parafka.core.record

    found.put(parafka.core.record.__file__)


def _check(source: str) -> None:
    """A member started as the runs start them imports the earlier build, compiled."""
    ctx = multiprocessing.get_context("spawn")
    found = ctx.Queue()
    os.environ[ENV] = source
    try:
        child = ctx.Process(target=_imported, args=(found,))
        child.start()
    finally:
        os.environ.pop(ENV, None)
    child.join(120)
    if found.empty():
        raise SystemExit(f"a member of the earlier build failed to import it from {source}")
    where = found.get()
    if not (where.startswith(source) and where.endswith(".so")):
        raise SystemExit(f"a member of the earlier build imported {where}, not {source}")
    note(f"members of the earlier build import {where}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier build's git revision")
    parser.add_argument("--members", type=int, choices=(1, 2), default=2)
    pr.add_side_by_side_options(parser, orderings="key,unordered")
    args = parser.parse_args(argv)
    loops = pr.TWO_LOOPS if args.members == 2 else pr.ONE_LOOP
    with tempfile.TemporaryDirectory(prefix="parafka-build-") as tmp:
        where = Path(tmp) / "tree"
        try:
            source = str(_build(args.base, where))
            _check(source)
            configs = {loops: pr.CONFIGS[loops]}
            for ordering in args.orderings.split(","):
                for label, build in ((args.base, source), ("working tree", None)):
                    name = f"x{args.members} {ordering}, {label}"
                    run = _members(build, args.members, {"ordering": ordering})
                    configs[name] = (loops, None, run)
            return pr.side_by_side(configs, args)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False
            )


if __name__ == "__main__":
    sys.exit(main())
