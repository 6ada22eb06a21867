"""`python -m parafka.sim`: run seeded simulations of the engine; exit 1 on a violation."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from parafka.core.errors import ConfigError
from parafka.testing.sim.checks import Violation
from parafka.testing.sim.world import SimConfig, quiet_logs, run_seed, seeds, shortest_failing

TRACE_LINES = 40


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parafka.sim", description=__doc__)
    parser.add_argument("--seeds", default="200", help="N (seeds 0..N-1) or A:B (A..B-1)")
    parser.add_argument("--seed", type=int, help="run this one seed (with its trace)")
    parser.add_argument("--chaos", type=int, help="chaos events (default: the config's)")
    parser.add_argument("--records", type=int, default=SimConfig.records)
    parser.add_argument(
        "--exactly-once", action="store_true", help="transactional outputs and offsets"
    )
    parser.add_argument("--starve", action="store_true", help="one partition's oldest record hangs")
    parser.add_argument(
        "--stream-outputs",
        action="store_true",
        help="exactly-once outputs produced as released (ControlLoop.stream_outputs)",
    )
    parser.add_argument("--handler", help="module:function, your own handler (see docs)")
    parser.add_argument("--ordering", choices=("key", "partition", "unordered"))
    parser.add_argument("--batch-size", type=int, help="the handler takes lists of records")
    parser.add_argument(
        "--key-rate", type=float, default=None, help="records per second per key (rate waits)"
    )
    parser.add_argument(
        "--adaptive", action="store_true", help='concurrency="auto" (a moving dispatch window)'
    )
    parser.add_argument(
        "--retry-topic",
        action="store_true",
        help="records failing their retries are parked on a retry topic (fenced keys)",
    )
    parser.add_argument(
        "--operator",
        action="store_true",
        help="an operator pauses, resumes, skips and parks records (the control plane)",
    )
    parser.add_argument(
        "--handover",
        action="store_true",
        help="rounds end where handlers on the control thread are handed over (handover.py)",
    )
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.retry_topic and args.handler is None:
        parser.error(
            "the built-in handler does not model --retry-topic with --batch-size: "
            "pass --handler, or drop one of the two"
        )
    if os.environ.get("PYTHONHASHSEED") != "0":  # sets of partitions iterate by hash
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "parafka.testing.sim", *sys.argv[1:]])
    quiet_logs()
    chosen = [args.seed] if args.seed is not None else seeds(args.seeds)
    started = time.monotonic()
    parked = passed = 0  # --retry-topic: records parked, and passed by a commit meanwhile
    shape: dict[str, Any] = {
        "records": args.records,
        "exactly_once": args.exactly_once,
        "starve": args.starve,
        "stream_outputs": args.stream_outputs,
        "ordering": args.ordering,
        "batch_size": args.batch_size,
        "key_rate": args.key_rate,
        "adaptive": args.adaptive,
        "retry_topic": args.retry_topic,
        "operator": args.operator,
        "handover": args.handover,
    }
    if args.handler is not None:
        from parafka.core.loader import load_target

        shape["handler"] = load_target(args.handler)
    for seed in chosen:
        config = SimConfig(seed, **shape)
        if args.chaos is not None:
            config = SimConfig(seed, chaos_events=args.chaos, **shape)
        try:
            world = run_seed(config)
            found = None
            parked += len(world.checker.parked)
            passed += world.checker.passed_parked
        except Violation:
            found = shortest_failing(config)
        except ConfigError as exc:  # a shape the engine refuses: the user's mistake
            print(f"python -m parafka.sim: {exc}", file=sys.stderr)
            return 2
        if found is not None:
            chaos, violation = found
            world = violation.world  # type: ignore[attr-defined]
            print(f"FAILED {world.describe()}", file=sys.stderr)
            print(f"  {violation}", file=sys.stderr)
            for line in world.trace[-TRACE_LINES:]:
                print(f"  {line}", file=sys.stderr)
            handler = f" --handler {args.handler}" if args.handler else ""
            print(
                f"  replay: python -m parafka.sim --seed {seed} --chaos {chaos} "
                f"{config.flags()}{handler}",
                file=sys.stderr,
            )
            return 1
    elapsed = time.monotonic() - started
    print(f"simulated {len(chosen)} seed(s) in {elapsed:.1f} s: every invariant held")
    if args.retry_topic:
        print(
            f"{parked} record(s) parked; committed offsets passed parked records not yet "
            f"done {passed} time(s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
