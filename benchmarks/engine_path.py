"""The control thread's own cost per record, without a broker or worker threads.

Feeds the ledger fetched batches of 1,000 in-memory messages (4 partitions, 1,000 keys, in
the order a fetch returns them: runs of one partition), takes the runs it allows, packs them
into executor chunks, reports each chunk done (no outputs, or one output per record, then
acknowledged: a chunk's in one report, as the output thread reports an epoch), and plans a
commit every 10 batches: the work the control thread does per record, minus the client.
CPU time of one thread, best of `--repeat`, so it is steady on a busy machine, unlike the
end-to-end benchmarks. `benchmarks/profile_engine.py` gives the end-to-end split.

With `--ahead N`, N fetched batches are taken in before the runs are taken (a consumer
with a backlog reads ahead: a key then has several records waiting, and runs of several).
With `--workers`, the chunks are packed and run as the thread executor does it
(`pack_units`, `run_units` with a no-op handler) in the same thread: the control thread's
and the workers' cost together, which is what shares the GIL.

With `--phases`, the best pass is split by the ledger's steps (accept, which queues in the
scheduler; take; completed, which settles; acknowledged) and the rest.

Usage: python benchmarks/engine_path.py [--records N] [--repeat R] [--ahead N] [--workers]
                                        [--tune-gc] [--phases]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from parafka import tune_gc
from parafka.core.commits import CommitPlanner
from parafka.core.entry import Entry
from parafka.core.ledger import Ledger
from parafka.core.outcomes import Outcome
from parafka.core.record import Produced
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import Ordering
from parafka.executors.base import Work, pack_runs
from parafka.executors.chunks import Chunk, pack_units, run_units
from parafka.testing.memory.log import MemoryMessage

PARTITIONS = 4
KEYS = 1000
BATCH = 1000
CHUNK = 256


def messages(count: int) -> list[list[MemoryMessage]]:
    """Fetched batches: each a run of one partition after another, as a fetch returns."""
    per_partition: list[list[MemoryMessage]] = [[] for _ in range(PARTITIONS)]
    for i in range(count):
        key = i * 7919 % KEYS
        log = per_partition[key % PARTITIONS]
        log.append(MemoryMessage("t", key % PARTITIONS, len(log), b"k%d" % key, b"v", None, 0))
    batches = []
    share = BATCH // PARTITIONS
    for start in range(0, count // PARTITIONS, share):
        batches.append([m for log in per_partition for m in log[start : start + share]])
    return batches


def _noop(record: object) -> None:
    return None


def _one_output(record: object) -> bytes:
    return b"v"  # one output to the default topic, as the md5 transformer returns


PRODUCED = [("out", b"v", b"k", None)]
STEPS = ("accept", "take", "completed", "acknowledged")  # the ledger's, timed by --phases


def _acknowledge(
    acknowledged: Callable[..., Any], sends: list[tuple[list[Entry], list[Produced]]]
) -> None:
    """The outputs handed over are acknowledged in one report, as the output thread
    reports an epoch (engine/outputs.py); `acknowledged` is the ledger's."""
    if sends:
        acknowledged([entry for entries, _ in sends for entry in entries], None)


def _timed(phases: dict[str, float], name: str, step: Callable[..., Any]) -> Callable[..., Any]:
    """`step`, adding its CPU time to `phases[name]` (one clock read a call: per batch)."""

    def timed(*args: Any) -> Any:
        began = time.thread_time()
        try:
            return step(*args)
        finally:
            phases[name] = phases.get(name, 0.0) + time.thread_time() - began

    return timed


def one_pass(
    ordering: Ordering,
    batches: list[list[MemoryMessage]],
    outputs: bool,
    workers: bool = False,
    ahead: int = 1,
    phases: dict[str, float] | None = None,
) -> int:
    ledger = Ledger(ordering, concurrency=4 * BATCH, retry=RetryPolicy())
    ledger.scheduler.run_length = CHUNK
    # The ledger's steps, timed with --phases (the rest: packing, running, plans). Wrapped
    # here, not set on the ledger: compiled (setup.py), its methods cannot be replaced.
    steps = [getattr(ledger, name) for name in STEPS]
    if phases is not None:
        steps = [_timed(phases, name, step) for name, step in zip(STEPS, steps, strict=True)]
    accept, take, completed, acknowledged = steps
    for p in range(PARTITIONS):
        ledger.assign(("t", p), 0)
    planner = CommitPlanner(4000)
    produced = PRODUCED
    work = Work(_one_output if outputs else _noop, default_topic="out", ordering=ordering)
    unordered = ordering == "unordered"
    done = 0
    for number, batch in enumerate(batches):
        accept(batch)
        if number % ahead != ahead - 1 and number != len(batches) - 1:
            continue  # read ahead: a key has several records waiting, as under a backlog
        while runs := take():
            if workers:
                for units in pack_units(runs, CHUNK, unordered):
                    chunk = Chunk(units)  # as the thread executor makes them
                    run_units(work.handler, chunk, work, None, unordered)  # type: ignore[arg-type]
                    result = chunk.take_done()
                    assert result is not None
                    actions = completed(result.records, result.outcomes)
                    _acknowledge(acknowledged, actions.send)
                    done += len(result.records)
                continue
            for chunk in pack_runs(runs, CHUNK):
                if outputs:
                    results: list[Outcome | None] = [(produced, None)] * len(chunk)
                    actions = completed(chunk, results)
                    _acknowledge(acknowledged, actions.send)
                else:
                    completed(chunk, None)
                done += len(chunk)
        if number % 10 == 9:
            planner.plan({tp: part.offsets for tp, part in ledger.parts.items()})
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--workers", action="store_true", help="also pack and run the chunks (no-op handler)"
    )
    parser.add_argument("--ahead", type=int, default=1, help="batches taken in before runs")
    parser.add_argument(
        "--tune-gc", action="store_true", help="parafka.tune_gc() first, as `parafka run` does"
    )
    parser.add_argument(
        "--phases", action="store_true", help="also split the best pass by the ledger's steps"
    )
    args = parser.parse_args(argv)
    if args.tune_gc:  # with --ahead, thousands of entries live: the default collector's work
        tune_gc()  # would outweigh the engine's
    batches = messages(args.records)
    for outputs in (False, True):
        for ordering in ("unordered", "partition", "key"):
            best, split = float("inf"), {}
            for _ in range(args.repeat):
                phases: dict[str, float] | None = {} if args.phases else None
                began = time.thread_time()
                done = one_pass(ordering, batches, outputs, args.workers, args.ahead, phases)
                took = time.thread_time() - began
                if took < best:
                    best, split = took, phases or {}
            assert done == args.records, (ordering, done)
            label = "one output each" if outputs else "no outputs"
            line = f"{ordering:9} {label:15} {best / done * 1e6:6.2f} us a record"
            if split:
                split["the rest"] = best - sum(split.values())
                line += ": " + ", ".join(f"{k} {v / done * 1e6:.2f}" for k, v in split.items())
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
