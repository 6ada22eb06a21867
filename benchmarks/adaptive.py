"""Adaptive concurrency (`concurrency="auto"`) against a sweep of fixed concurrencies.

The downstream (parafka.testing.sim.downstream): 50 ms per call unloaded (log-normal jitter,
sigma 0.1); latency flat up to its capacity in flight, rising in proportion past it;
calls past `reject_above` in flight fail at once (a 429, which the handler raises as
`parafka.Overloaded`). Its capacity changes twice: 32 (rejecting past 48) for 40 s, 16
(past 24) for 40 s, 48 (past 72) for 40 s.

Everything runs on virtual time, in a discrete-event simulation: the limiter is the very
`AdaptiveLimit` object the control loop feeds, told of every success (with its latency
and the records in flight) and every failure; the records' time comes from the model,
not from this machine, so the result does not depend on how busy its 2 cores are, and a
run takes seconds. The engine's wiring of the limiter is tested apart
(tests/unit/engine/test_adaptive_engine.py) and measured end to end on the real clock by
benchmarks/adaptive_engine.py.

Targets (issue 15), against the fixed concurrency with the best throughput and at most
1% errors: throughput >= 0.9x, p99 latency <= 1.5x, errors <= 1% of records, and after
each capacity change, back within 10 s (the 2-s rolling throughput >= 90% of the new
capacity's and its p99 <= 1.5x the unloaded p99). Also per phase, against the best fixed
concurrency for that phase alone (as if the capacity never changed).

Usage: python benchmarks/adaptive.py [--chart benchmarks/adaptive.png] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys

from parafka.core.adaptive import AdaptiveLimit
from parafka.testing.sim.downstream import Capacity, Downstream, Trace, drive, percentile

PHASE = 40.0
PHASES = (Capacity(0.0, 32, 48), Capacity(PHASE, 16, 24), Capacity(2 * PHASE, 48, 72))
SECONDS = PHASE * len(PHASES)
FIXED = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)
TICK = 0.25
WINDOW = 2.0  # seconds of the rolling window that judges re-convergence


def phase_slice(trace: Trace, index: int) -> tuple[int, int]:
    start = int(index * PHASE / trace.tick)
    return start, start + int(PHASE / trace.tick)


def phase_numbers(trace: Trace, index: int) -> tuple[float, float, float]:
    """(throughput, p99, error ratio) of one phase."""
    first, last = phase_slice(trace, index)
    done = sum(trace.done[first:last])
    errors = sum(trace.errors[first:last])
    ticks = trace.p99s[first:last]
    # The per-tick p99s are what the trace keeps per phase; their 99th percentile is close
    # to the phase's p99 at these rates (hundreds of records per tick).
    return done / PHASE, percentile(ticks, 0.99), errors / max(1, done + errors)


def reconverged(trace: Trace, index: int, base_p99: float) -> float | None:
    """Seconds after capacity change `index` until the end of the first rolling window
    that meets the targets (so at least WINDOW; None: never within the phase)."""
    phase = PHASES[index]
    first, last = phase_slice(trace, index)
    per_window = int(WINDOW / trace.tick)
    ideal = phase.capacity / 0.05
    for end in range(first + per_window, last + 1):
        window = slice(end - per_window, end)
        rate = sum(trace.done[window]) / WINDOW
        p99 = max(trace.p99s[window])
        if rate >= 0.9 * ideal and p99 <= 1.5 * base_p99:
            return (end - first) * trace.tick  # the end of the first window that meets them
    return None


def chart(path: str, auto: Trace, best: int, fixed: Trace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [(i + 1) * auto.tick for i in range(len(auto.done))]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    capacity = [next(p for p in reversed(PHASES) if p.at < t).capacity for t in times]
    axes[0].plot(times, auto.limits, label="auto: limit")
    axes[0].plot(times, capacity, "k--", label="downstream capacity")
    axes[0].axhline(best, color="tab:orange", linestyle=":", label=f"best fixed: {best}")
    axes[0].set_ylabel("concurrency")
    axes[0].legend(loc="upper left")
    axes[1].plot(times, [d / auto.tick for d in auto.done], label="auto")
    axes[1].plot(times, [d / fixed.tick for d in fixed.done], label=f"fixed {best}", alpha=0.7)
    axes[1].set_ylabel("records/s")
    axes[1].legend(loc="upper left")
    axes[2].plot(times, [p * 1000 for p in auto.p99s], label="auto")
    axes[2].plot(times, [p * 1000 for p in fixed.p99s], label=f"fixed {best}", alpha=0.7)
    axes[2].set_ylabel(f"p99 latency per {auto.tick:g} s (ms)")
    axes[2].set_xlabel("seconds (virtual)")
    axes[2].legend(loc="upper left")
    fig.suptitle("Adaptive concurrency against a downstream whose capacity changes")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chart", default=None, help="write the chart (PNG) here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    downstream = Downstream(phases=PHASES)
    base_p99 = drive(Downstream(phases=(Capacity(0, 1000, 2000),)), 8, 20, args.seed).p99()
    print(
        f"downstream: 50 ms unloaded, p99 {base_p99 * 1000:.1f} ms; phases (capacity, "
        f"rejects past): {[(p.capacity, p.reject_above) for p in PHASES]}, {PHASE:g} s each"
    )
    print(f"{'concurrency':>12} {'records/s':>10} {'p99 ms':>8} {'errors':>8}")
    fixed: dict[int, Trace] = {}
    for c in FIXED:
        trace = fixed[c] = drive(downstream, c, SECONDS, args.seed, TICK)
        print(
            f"{c:>12} {trace.throughput():>10.0f} {trace.p99() * 1000:>8.1f} "
            f"{trace.error_ratio:>8.2%}"
        )
    limiter = AdaptiveLimit(1, 256)
    auto = drive(downstream, limiter, SECONDS, args.seed, TICK)
    print(
        f"{'auto':>12} {auto.throughput():>10.0f} {auto.p99() * 1000:>8.1f} "
        f"{auto.error_ratio:>8.2%}"
    )
    eligible = [c for c in FIXED if fixed[c].error_ratio <= 0.01]
    best = max(eligible, key=lambda c: fixed[c].throughput())
    ref = fixed[best]
    ratio = auto.throughput() / ref.throughput()
    p99_ratio = auto.p99() / ref.p99()
    print(
        f"\nwhole run, against the best fixed ({best}, errors <= 1%): throughput "
        f"{ratio:.2f}x (target >= 0.9), p99 {p99_ratio:.2f}x (target <= 1.5), errors "
        f"{auto.error_ratio:.2%} (target <= 1%)"
    )
    met = ratio >= 0.9 and p99_ratio <= 1.5 and auto.error_ratio <= 0.01
    print(
        f"{'phase':>5} {'capacity':>8} {'best fixed':>10} {'throughput':>10} {'p99':>6} "
        f"{'errors':>7} {'back in':>8}"
    )
    for index, phase in enumerate(PHASES):
        rate, p99, errors = phase_numbers(auto, index)
        rows = {c: phase_numbers(fixed[c], index) for c in FIXED}
        ok = [c for c in FIXED if rows[c][2] <= 0.01]
        most = max(rows[c][0] for c in ok)  # within 1% of the most, the lowest p99
        top = min((c for c in ok if rows[c][0] >= 0.99 * most), key=lambda c: rows[c][1])
        back = reconverged(auto, index, base_p99)
        shown = "-" if back is None else f"{back:.1f} s"
        shown = f"{shown} from start" if index == 0 else shown
        print(
            f"{index + 1:>5} {phase.capacity:>8} {top:>10} {rate / rows[top][0]:>9.2f}x "
            f"{p99 / rows[top][1]:>5.2f}x {errors:>7.2%} {shown:>8}"
        )
        if index > 0:
            met = met and back is not None and back <= 10.0
    print(f"\ntargets {'met' if met else 'NOT met'}")
    if args.chart:
        chart(args.chart, auto, best, ref)
        print(f"chart: {args.chart}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
