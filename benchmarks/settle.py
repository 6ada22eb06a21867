"""`PartitionOffsets.settle` alone: the cost an offset of receiving and settling, in offset
order and with every tenth offset settled late (as key order's shard runs settle).

    cd benchmarks && ../.venv/bin/python settle.py
"""

from __future__ import annotations

import sys
import time

from parafka.core.offsets import PartitionOffsets

RECORDS = 200_000
FETCH = 1_000  # offsets received at a time
RUN = 64  # offsets settled at a time


def one_pass(late: bool) -> float:
    """Seconds an offset, receipt included."""
    state = PartitionOffsets(0)
    began = time.perf_counter()
    for start in range(0, RECORDS, FETCH):
        fetched = list(range(start, start + FETCH))
        state.receive_many(fetched)
        first = [o for o in fetched if o % 10] if late else fetched
        for i in range(0, len(first), RUN):
            state.settle(first[i : i + RUN])
        if late:
            state.settle(fetched[::10])
    assert state.position == RECORDS
    return (time.perf_counter() - began) / RECORDS


def main() -> int:
    for late in (False, True):
        best = min(one_pass(late) for _ in range(5))
        label = "every tenth late" if late else "in order"
        print(f"{label:17} {best * 1e6:.3f} us an offset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
