"""What the wait for the outputs' acknowledgement costs ordered processing: the md5
scoreboard's `--processes 2` (per_record.py) as it is, beside the same with every epoch of
outputs reported acknowledged as soon as the output thread has it, alternated round by
round; and each epoch's timeline inside the members.

In key and partition order a shard is busy until its run's outputs are acknowledged
(engine/outputs.py: the output thread produces an epoch, flushes, reports). The second
configuration reports each epoch before producing it: the upper bound of what releasing a
key at the hand-over could give (docs/architecture.md, "Waiting for a core, and the
acknowledgement wait in key order"). It is unsafe (a refused output is never retried), so
it exists only here, patched into the members of this run.

The timeline, per epoch, in milliseconds (medians over the epochs of all rounds): how long
its first item waited while the previous epoch flushed ("inbox"), producing it, flushing
it (the broker's round trip), and the whole wait, from the first item's hand-over to the
report.

A member applies the patch when it starts: the members are spawned processes, which import
this module again before their work (as builds.py's do), and the environment variables
PARAFKA_ACK_MODE and PARAFKA_ACK_TIMELINE, set around each configuration's start, tell
them what to do.

Usage: python benchmarks/ack_wait.py [--orderings key,partition] [--rounds R]
                                     [--records N] [--cpu] [--broker local|kafka]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import per_record as pr
from common import console

MODE = "PARAFKA_ACK_MODE"  # "handover": report each epoch as acknowledged at once
TIMELINE = "PARAFKA_ACK_TIMELINE"  # a folder: each member writes its epochs there
HANDOVER = "handover"


def _patch_member(mode: str | None, folder: str | None) -> None:
    """In a member, as it starts: wrap the output thread's `pump` (and the producer's
    `flush`, to see where producing ends) to report early and to note each epoch."""
    from parafka.engine.outputs import Acknowledged, OutputThread
    from parafka.kafka.confluent import ConfluentProducer

    pump, flush, close = OutputThread.pump, ConfluentProducer.flush, OutputThread.close
    flushing: dict[int, float] = {}  # producer -> when its current flush began
    epochs: list[tuple[float, float, float, float, int]] = []

    def timed_flush(self: ConfluentProducer, timeout: float) -> int:
        flushing.setdefault(id(self), time.monotonic())
        return flush(self, timeout)

    def patched_pump(self: OutputThread, timeout: float = 0.0) -> bool:
        starting = self._epoch is None and bool(self._inbox)
        if starting:
            since, began = self._waiting_since, time.monotonic()
            if mode == HANDOVER:  # unsafe: before the broker has any of it
                items = list(self._inbox)
                self._completions.put(Acknowledged([e for item in items for e in item[0]], None))
            self._noted = (since, began, sum(len(item[0]) for item in self._inbox))
        reported = pump(self, timeout)
        if reported:
            since, began, size = self._noted
            flushed = flushing.pop(id(self._producer), began)
            epochs.append((since, began, flushed, time.monotonic(), size))
        return reported

    def closing(self: OutputThread, timeout: float) -> None:
        close(self, timeout)
        if folder is not None and epochs:
            with open(os.path.join(folder, f"{os.getpid()}.json"), "w", encoding="ascii") as f:
                json.dump({"mode": mode or "acknowledged", "epochs": epochs}, f)

    if folder is not None:
        ConfluentProducer.flush = timed_flush  # type: ignore[method-assign]
        OutputThread.close = closing  # type: ignore[method-assign]
    OutputThread.pump = patched_pump  # type: ignore[method-assign]


if os.environ.get(MODE) is not None:  # a member of this run, starting
    _patch_member(os.environ[MODE] or None, os.environ.get(TIMELINE))

LABELS = {"": "acknowledged (as built)", HANDOVER: "reported at hand-over (unsafe bound)"}


def _members(mode: str, folder: str, settings: dict[str, Any]) -> pr.Run:
    """per_record's `--processes 2` run, its members patched for `mode`."""
    run_parafka = pr._parafka(2, pr.PER_RECORD, **settings)
    return pr.with_environment(run_parafka, {MODE: mode, TIMELINE: folder})


def _timeline(folders: dict[str, Path]) -> None:
    """Each configuration's epochs, medians in ms."""
    console.print(
        "\nEach epoch of outputs, medians over all rounds (ms): the first item's wait while "
        "the previous epoch flushed, producing, flushing, and the whole wait to the report"
    )
    console.print("| configuration | epochs | records an epoch | inbox | produce | flush | whole |")
    console.print("|---|--:|--:|--:|--:|--:|--:|")
    for name, folder in folders.items():
        epochs = []
        for path in folder.glob("*.json"):
            epochs += json.loads(path.read_text(encoding="ascii"))["epochs"]
        if not epochs:
            console.print(f"| {name} | 0 | | | | | |")
            continue

        columns = (
            [b - s for s, b, _, _, _ in epochs],  # waiting for the epoch before
            [f - b for _, b, f, _, _ in epochs],  # producing
            [r - f for _, _, f, r, _ in epochs],  # flushing
            [r - s for s, _, _, r, _ in epochs],  # hand-over to report
        )
        ms = " | ".join(f"{1000 * statistics.median(column):.2f}" for column in columns)
        size = statistics.median(e[4] for e in epochs)
        console.print(f"| {name} | {len(epochs):,} | {size:,.0f} | {ms} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pr.add_side_by_side_options(parser, orderings="key")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parafka-acks-") as tmp:
        configs = {pr.TWO_LOOPS: pr.CONFIGS[pr.TWO_LOOPS]}
        folders: dict[str, Path] = {}
        for ordering in args.orderings.split(","):
            for mode, label in LABELS.items():
                name = f"x2 {ordering}, {label}"
                folder = Path(tmp) / f"{ordering}-{mode or 'acked'}"
                folder.mkdir()
                folders[name] = folder
                run = _members(mode, str(folder), {"ordering": ordering})
                configs[name] = (pr.TWO_LOOPS, None, run)
        code = pr.side_by_side(configs, args)
        _timeline(folders)
        return code


if __name__ == "__main__":
    sys.exit(main())
