"""The control thread's own cost per record, without a broker or worker threads.

Feeds the ledger fetched batches of 1,000 in-memory messages (4 partitions, 1,000 keys, in
the order a fetch returns them: runs of one partition), takes the runs it allows, packs them
into executor chunks, reports each chunk done (no outputs, or one output per record that is
then acknowledged), and plans a commit every 10 batches: the work the control thread does
per record, minus the client. CPU time of one thread, best of `--repeat`, so it is steady on
a busy machine, unlike the end-to-end benchmarks. `benchmarks/profile_engine.py` gives the
end-to-end split.

Usage: python benchmarks/engine_path.py [--records N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from parafka.commits import CommitPlanner
from parafka.executors.base import pack_runs
from parafka.executors.outcomes import Outcome
from parafka.ledger import Ledger
from parafka.memory.log import MemoryMessage
from parafka.record import Produced
from parafka.retry import RetryPolicy
from parafka.scheduler import Ordering

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


def one_pass(ordering: Ordering, batches: list[list[MemoryMessage]], outputs: bool) -> int:
    ledger = Ledger(ordering, concurrency=4 * BATCH, retry=RetryPolicy())
    ledger.scheduler.run_length = CHUNK
    for p in range(PARTITIONS):
        ledger.assign(("t", p), 0)
    planner = CommitPlanner(4000)
    produced = [Produced("out", b"v", b"k", None)]
    done = 0
    for number, batch in enumerate(batches):
        ledger.accept(batch)  # type: ignore[arg-type]
        while runs := ledger.take():
            for chunk in pack_runs(runs, CHUNK):
                if outputs:
                    results: list[Outcome | None] = [(produced, None)] * len(chunk)
                    actions = ledger.completed(chunk, results)
                    for entries, _ in actions.send:
                        ledger.acknowledged(entries, None)
                else:
                    ledger.completed(chunk, None)
                done += len(chunk)
        if number % 10 == 9:
            planner.plan({tp: part.offsets for tp, part in ledger.parts.items()})
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    batches = messages(args.records)
    for outputs in (False, True):
        for ordering in ("unordered", "partition", "key"):
            best = float("inf")
            for _ in range(args.repeat):
                began = time.thread_time()
                done = one_pass(ordering, batches, outputs)
                best = min(best, time.thread_time() - began)
            assert done == args.records, (ordering, done)
            label = "one output each" if outputs else "no outputs"
            print(f"{ordering:9} {label:15} {best / done * 1e6:6.2f} us a record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
