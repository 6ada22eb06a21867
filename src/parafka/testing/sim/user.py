"""Your own handler under the simulator: `simulate(handler, ...)`.

The world of `parafka.testing.sim` (several consumers of one group running the real engine over
the in-memory cluster, on a virtual clock, with rebalances, crashes, expired sessions,
refused commits and deliveries) runs your handler instead of its own. It still injects
failures and worker deaths before your handler is called (unless `failures=False`), and
checks the engine's invariants after every event: nothing lost, nothing committed before
it is done, no record run by a consumer that gave its partition up, per-key (partition)
order of runs and of effects, the buffer bound, and with `exactly_once` that a
read_committed reader sees each record's outputs once. Your own invariant over the final
outputs goes in `check`. A broken one raises `SimulationFailed` with the seed, the
shortest chaos phase that still breaks it, and that run's trace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parafka.core.record import Output, Record, normalize_outputs
from parafka.core.seam import Message
from parafka.testing.sim.checks import SOURCE_HEADER, Violation
from parafka.testing.sim.executor import KillWorker

if TYPE_CHECKING:
    from parafka.testing.sim.world import World

TRACE_LINES = 40


class SimulationFailed(AssertionError):
    """An invariant broke while simulating a handler; `seed` and `chaos_events` replay it
    (`simulate(handler, seeds=[seed], chaos_events=chaos_events, ...)`)."""

    def __init__(self, message: str, seed: int, chaos_events: int, trace: list[str]) -> None:
        super().__init__(message)
        self.seed = seed
        self.chaos_events = chaos_events
        self.trace = trace


@dataclass(frozen=True)
class SimulationReport:
    """What `simulate` ran: every invariant held on each of these seeds."""

    seeds: int
    seconds: float


def simulate(
    handler: Callable[..., Any],
    *,
    seeds: int | Iterable[int] = 100,
    ordering: str = "key",
    batch_size: int | None = None,
    exactly_once: bool = False,
    records: int = 60,
    partitions: int = 3,
    keys: int = 5,
    values: Callable[[int, int, bytes], bytes] | None = None,
    failures: bool = True,
    max_attempts: int = 4,
    chaos_events: int = 250,
    setup: Callable[[], None] | None = None,
    check: Callable[[list[Message]], None] | None = None,
) -> SimulationReport:
    """Run `handler` (one record per call, or a list of up to `batch_size` records) in
    seeded simulated worlds; raise SimulationFailed on the first broken invariant.

    `seeds`: how many (0..N-1) or which. `values(partition, index, key)` makes each input
    record's value (default b"<key>-<partition>-<index>"). `setup()` runs before each
    seed (reset your handler's state there); `check(outputs)` after each seed, with the
    output topic as a reader sees it (read_committed with `exactly_once`): raise
    AssertionError when your own invariant breaks. Outputs all go to the simulated output
    topic, each with a `parafka.sim.source` header naming its input records.
    """
    from parafka.testing.sim.world import SimConfig, shortest_failing

    chosen: Iterable[int] = range(seeds) if isinstance(seeds, int) else seeds
    engine = logging.getLogger("parafka")
    level = engine.level
    engine.setLevel(logging.CRITICAL)  # retries and rebalances are everyday events here
    started = time.monotonic()
    count = 0
    try:
        for seed in chosen:
            config = SimConfig(
                seed,
                chaos_events=chaos_events,
                records=records,
                partitions=partitions,
                keys=keys,
                max_attempts=max_attempts,
                exactly_once=exactly_once,
                handler=handler,
                ordering=ordering,
                batch_size=batch_size,
                values=values or _default_value,
                failures=failures,
                setup=setup,
                check=check,
            )
            found = shortest_failing(config)  # one run when the seed passes
            if found is not None:
                chaos, violation = found
                world: World = violation.world  # type: ignore[attr-defined]
                raise _failed(world, violation, chaos) from violation
            count += 1
    finally:
        engine.setLevel(level)
    return SimulationReport(count, time.monotonic() - started)


def _default_value(partition: int, index: int, key: bytes) -> bytes:
    return b"%s-%d-%d" % (key, partition, index)


def _failed(world: World, violation: Violation, chaos: int) -> SimulationFailed:
    config = world.config
    lines = [
        f"{violation}",
        f"  in {world.describe()}, {chaos} chaos events (the shortest that still fails)",
        *(f"  {line}" for line in world.trace[-TRACE_LINES:]),
        f"  replay: simulate(handler, seeds=[{config.seed}], chaos_events={chaos}, ...) with",
        "  PYTHONHASHSEED=0 (or python -m parafka.sim --handler module:function "
        f"--seed {config.seed} --chaos {chaos} {config.flags()})",
    ]
    return SimulationFailed("\n".join(lines), config.seed, chaos, world.trace)


def wrap_handler(world: World, number: int, handler: Callable[..., Any]) -> Callable[..., Any]:
    """The user's handler as consumer `number` of `world` runs it: the world's failures
    first, the checks around it, and its outputs tagged with their input records."""
    checker, plans, config = world.checker, world.plans, world.config
    out_topic = "out"
    runs = world.calls

    def before(records: Sequence[Record]) -> None:
        world.observe_letters()  # a dead letter acknowledged this round frees its shard
        checker.started_call(number, records)
        for record in records:
            plan = plans[((record.topic, record.partition), record.offset)]
            if record.attempt in plan.kills:
                give_up(records)
                raise KillWorker()
            if plan.fails_on(record.attempt):
                give_up(records)
                raise SimulatedFailure(f"attempt {record.attempt} of {record.offset} fails")

    def give_up(records: Sequence[Record]) -> None:
        """Exactly-once: a last attempt that fails is dead-lettered in the transaction."""
        checker.failed_call(number, records, config.max_attempts)

    def after(records: Sequence[Record], result: object) -> list[Output] | None:
        now = world.clock()
        for record in records:
            checker.succeeded_on((record.topic, record.partition), record.offset, number, now)
        produced = normalize_outputs(result, out_topic)
        if not produced:
            return None
        source = json.dumps(
            {"run": next(runs), "from": [[number, r.partition, r.offset] for r in records]}
        )
        for record in records:
            checker.with_output.add(((record.topic, record.partition), record.offset))
        return [
            Output(value, key, [*(headers or []), (SOURCE_HEADER, source)], out_topic)
            for _, value, key, headers in produced
        ]

    def call(records: Sequence[Record], argument: object) -> list[Output] | None:
        before(records)
        try:
            result = handler(argument)
        except Exception:
            give_up(records)
            raise
        return after(records, result)

    if config.batch_size is not None:
        return lambda batch: call(batch, batch)
    return lambda record: call([record], record)


class SimulatedFailure(Exception):
    """What the simulator raises in place of your handler on an injected failure."""
