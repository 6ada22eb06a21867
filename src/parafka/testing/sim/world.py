"""A simulated world: consumers running the real engine over the in-memory cluster.

One seed decides everything: the ordering mode, the records and what their handler does
on each attempt (fail, kill its worker, succeed with or without an output, be poison), and
the schedule: which consumer steps, which chunk runs, when outputs are flushed, when time
passes, and the faults (consumers joining, leaving, crashing and restarting, sessions
expiring, commits and deliveries failing, deliveries slowed). After a chaos phase the
faults stop and the world runs until it is idle; `Checker` asserts the invariants after
every event and at the end. The same seed replays the same run (with PYTHONHASHSEED=0: the
engine iterates sets of partitions).

Two more shapes of schedule, chosen by the config (a seed draws the same run otherwise):
`exactly_once` (outputs, offsets and dead letters in transactions, checked as a
read_committed reader sees them) and `starve` (one partition's oldest record hangs through
the whole chaos phase: the others must still flow and be committed, within the buffer
bound; at-least-once starving runs use `partition` order and start from a previous
deployment's commit, whose metadata marks records above it done, so fair-share trimming
meets skipped offsets). `user.py` runs a user's handler in the same world.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parafka.core.codec import encode_completed
from parafka.core.entry import Entry
from parafka.core.ledger import Phase as PartPhase
from parafka.core.parking import origin
from parafka.core.record import Output, Record
from parafka.core.retry import RetryPolicy
from parafka.core.seam import TP, ConsumerEvents, FailedCallback, Offset
from parafka.engine.control import ControlLoop
from parafka.engine.settings import Settings
from parafka.executors.base import Work
from parafka.executors.handover import HandedOver
from parafka.testing.memory import (
    InMemoryCluster,
    MemoryConsumer,
    MemoryProducer,
    RecordingEvents,
    VirtualClock,
)
from parafka.testing.sim.checks import Checker, Violation
from parafka.testing.sim.executor import KillWorker, SimCompletions, SimExecutor

TOPIC, OUT, DLQ, GROUP, RETRY = "in", "out", "dlq", "sim", "retry"
ORDERINGS = ("key", "partition", "unordered")
STRATEGIES = ("range", "cooperative-sticky")


class SimFailure(Exception):
    """What a simulated handler raises on a failing attempt."""


@dataclass(frozen=True)
class Plan:
    """What the handler does with one record: fail its first `fails` attempts, kill its
    worker on the attempts in `kills`, always fail (`poison`), return an output or not."""

    output: bool
    fails: int
    kills: frozenset[int]
    poison: bool

    def fails_on(self, attempt: int) -> bool:
        """Whether this attempt fails (a kill included)."""
        return attempt in self.kills or self.poison or attempt <= self.fails


@dataclass(frozen=True)
class SimConfig:
    """The shape of one simulated run (the seed draws the rest)."""

    seed: int
    chaos_events: int = 250
    records: int = 60
    partitions: int = 3
    keys: int = 5
    max_consumers: int = 3
    max_attempts: int = 4
    calm_rounds: int = 3000  # rounds of the calm phase before it counts as a stall
    key_rate: float | None = None  # --key-rate: records wait for their key (rate_wait)
    adaptive: bool = False  # concurrency="auto": the dispatch window moves
    retry_topic: bool = False  # --retry-topic: records failing their retries are parked
    operator: bool = False  # an operator pauses, resumes, skips and parks (steering.py)
    handover: bool = False  # a round may end where a hand-over of handlers does (handover.py)
    exactly_once: bool = False  # outputs, offsets and dead letters in transactions
    starve: bool = False  # one partition's oldest record hangs until the calm phase
    # exactly-once outputs produced into the open transaction as released (not at commit)
    stream_outputs: bool = False
    # A user's handler (parafka.testing.sim.user): the ordering it needs (None: drawn), how it is
    # called, the input values, and whether the world injects failures and worker deaths.
    handler: Callable[..., Any] | None = None
    ordering: str | None = None
    batch_size: int | None = None
    values: Callable[[int, int, bytes], bytes] | None = None
    failures: bool = True
    setup: Callable[[], None] | None = None  # before the run (reset the handler's state)
    check: Callable[[list[Any]], None] | None = None  # the final outputs: the user's checks

    def flags(self) -> str:
        """The command-line flags that select this config's shape (for a replay line)."""
        flags = [f"--records {self.records}"]
        if self.exactly_once:
            flags.append("--exactly-once")
        if self.starve:
            flags.append("--starve")
        if self.stream_outputs:
            flags.append("--stream-outputs")
        if self.ordering is not None:
            flags.append(f"--ordering {self.ordering}")
        if self.batch_size is not None:
            flags.append(f"--batch-size {self.batch_size}")
        if self.key_rate is not None:
            flags.append(f"--key-rate {self.key_rate:g}")
        if self.adaptive:
            flags.append("--adaptive")
        if self.retry_topic:
            flags.append("--retry-topic")
        if self.operator:
            flags.append("--operator")
        if self.handover:
            flags.append("--handover")
        return " ".join(flags)


class _Clients:
    """The cluster as one consumer's `seam.Kafka`: remembers the clients it made, so a
    crash kills them all."""

    def __init__(self, cluster: InMemoryCluster, number: int) -> None:
        self.cluster = cluster
        self.number = number
        self.made: MemoryConsumer | None = None
        self.producers: list[MemoryProducer] = []

    def consumer(self, config: Mapping[str, Any], events: ConsumerEvents) -> MemoryConsumer:
        self.made = self.cluster.consumer(config, events)
        return self.made

    def producer(
        self, config: Mapping[str, Any], on_failed: FailedCallback | None = None
    ) -> MemoryProducer:
        made = self.cluster.producer(config, on_failed)
        self.producers.append(made)
        return made

    def transactional_producer(self, config: Mapping[str, Any]) -> Any:
        # A transactional id per consumer, not a random one: the same seed, the same run.
        made = self.cluster.transactional_producer(
            {**config, "transactional.id": f"sim-{self.number}"}
        )
        self.producers.append(made)
        return made


class _Loop(ControlLoop):
    """The real control loop, telling the checker when it gains and loses partitions."""

    member = 0
    checker: Checker

    def on_assign(self, partitions: list[TP]) -> None:
        super().on_assign(partitions)
        self.checker.owned(self.member, partitions, self.clock())

    def on_revoke(self, partitions: list[TP]) -> None:
        super().on_revoke(partitions)
        self.checker.released(self.member, partitions, self.clock())

    def on_lost(self, partitions: list[TP]) -> None:
        self.checker.released(self.member, partitions, self.clock())
        super().on_lost(partitions)

    def _park_settled(
        self, entry: Entry, error: BaseException | None, at: tuple[int, int] | None
    ) -> None:
        if at is not None:
            self.checker.parked_at(self.member, entry.part.tp, at, self.clock())
        super()._park_settled(entry, error, at)


@dataclass
class _Member:
    number: int
    loop: _Loop
    executor: SimExecutor
    clients: _Clients
    alive: bool = True


@dataclass
class World:
    """Consumers, cluster, clock and checker of one seeded run."""

    config: SimConfig
    rng: random.Random = field(init=False)
    clock: VirtualClock = field(default_factory=VirtualClock)
    trace: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        rng, cfg = self.rng, self.config
        if cfg.setup is not None:
            cfg.setup()
        self.ordering = rng.choice(ORDERINGS)
        self.strategy = rng.choice(STRATEGIES)
        self.run_length = rng.choice((1, 1, 2, 4, 8))
        self.concurrency = rng.choice((1, 2, 4, 8))
        self.max_buffered = rng.choice((8, 16, 40))
        # Exactly-once: a transaction's commit waits for its slowed deliveries (time passes).
        on_idle = self.clock.advance if cfg.exactly_once else None
        self.cluster = InMemoryCluster(self.clock, on_idle=on_idle)
        self.cluster.create_topic(TOPIC, cfg.partitions)
        self.cluster.create_topic(OUT, 1)
        self.cluster.create_topic(DLQ, 1)
        inputs: dict[TP, list[bytes | None]] = {(TOPIC, p): [] for p in range(cfg.partitions)}
        self.plans: dict[tuple[TP, int], Plan] = {}
        for _ in range(cfg.records):
            partition = rng.randrange(cfg.partitions)
            key = f"k{rng.randrange(cfg.keys)}".encode()
            tp = (TOPIC, partition)
            value = b"v" if cfg.values is None else cfg.values(partition, len(inputs[tp]), key)
            self.cluster.produce(TOPIC, value, key=key, partition=partition)
            plan = self._plan()
            if not cfg.failures:
                plan = Plan(plan.output, 0, frozenset(), False)
            self.plans[(tp, len(inputs[tp]))] = plan
            inputs[tp].append(key)
        # The shapes are chosen after the draws above: a seed's records and plans are the
        # same in every shape.
        if cfg.ordering is not None:
            self.ordering = cfg.ordering
        elif cfg.starve and not cfg.exactly_once:
            self.ordering = "partition"  # where fair-share pauses and trimming act
        elif cfg.retry_topic and self.ordering == "partition":
            self.ordering = "key"  # parking refuses partition order
        # --retry-topic: a handler's attempts of a record, counted over every consumer and
        # over the retry topic (its plan's attempts are these)
        self.tries: dict[tuple[TP, int], int] = {}
        if cfg.retry_topic:
            self.cluster.create_topic(RETRY, 2)
            random.seed(cfg.seed)  # the jitter of parked records' delays
        if cfg.starve:
            # A run hangs for good: room must be left for the others' runs, in the
            # executor and in the buffer (the hung run, and its copy redelivered after a
            # rebalance, queued behind it, both count there).
            self.concurrency = max(self.concurrency, 2 * self.run_length)
            self.max_buffered = max(self.max_buffered, 4 * self.run_length)
        user = cfg.handler is not None
        self.checker = Checker(
            TOPIC,
            self.ordering,
            inputs,
            set() if user else {record for record, plan in self.plans.items() if plan.output},
            exactly_once=cfg.exactly_once,
            retry_topic=RETRY if cfg.retry_topic else None,
        )
        self.settings = _settings(
            self.ordering,
            self.strategy,
            self.max_buffered,
            cfg.max_attempts,
            cfg.exactly_once,
            cfg.batch_size,
            cfg.key_rate,
            self.concurrency if cfg.adaptive else None,
            cfg.retry_topic,
        )
        # Until a delivery fault is armed, only a record's own failures may use up its
        # attempts: one whose plan succeeds in time must never be dead-lettered. (A user's
        # handler may fail by itself: no record is known innocent.)
        self.checker.blame_only_failures(
            set()
            if user
            else {
                record
                for record, plan in self.plans.items()
                if not plan.poison and plan.fails + len(plan.kills) < cfg.max_attempts
            }
        )
        self.members: list[_Member] = []
        self._out_seen = 0
        self._dlq_seen = 0
        self._parked_seen: dict[int, int] = {}
        self._event = 0
        self.calls = itertools.count()  # a user's handler's calls (tags their outputs)
        self.starving: tuple[TP, int] | None = None  # the record that hangs, until released
        if cfg.starve:
            self.starving = self._starve()

    def _starve(self) -> tuple[TP, int]:
        """Pick the partition with the most records to starve. At-least-once, the group
        starts from a previous deployment's commit (in `key` order: its metadata marks
        records above the committed offset done, and their outputs are written). The
        oldest record not done hangs until the calm phase."""
        rng, checker = self.rng, self.checker
        tp = max(checker.inputs, key=lambda t: (len(checker.inputs[t]), -t[1]))
        if self.config.exactly_once:
            return (tp, 0)  # exactly-once does not read commit metadata
        previous = self.cluster.consumer({"group.id": GROUP}, RecordingEvents())
        offsets = []
        first = 0
        for part, keys in checker.inputs.items():
            if not keys:
                continue
            committed = rng.randrange(min(3, len(keys)))
            done = {o for o in range(committed + 1, len(keys)) if rng.random() < 0.3}
            for offset in sorted(done | set(range(committed))):
                checker.succeeded_on(part, offset, -1, 0.0)
                if self.plans[(part, offset)].output:
                    body = json.dumps({"m": -1, "p": part[1], "o": offset}).encode()
                    self.cluster.produce(OUT, body, key=keys[offset])
            offsets.append(Offset(part[0], part[1], committed, encode_completed(committed, done)))
            if part == tp:
                first = committed
        previous.commit(offsets, asynchronous=False)
        previous.close()
        self._observe_outputs()
        self._note(f"previous deployment committed {[(o.partition, o.offset) for o in offsets]}")
        return (tp, first)

    def _plan(self) -> Plan:
        rng = self.rng
        poison = rng.random() < 0.03
        fails = rng.choice((0, 0, 0, 0, 1, 2))
        kills = frozenset(a for a in (1, 2, 3) if rng.random() < 0.03)
        return Plan(rng.random() < 0.8, fails, kills, poison)

    # -- consumers ----------------------------------------------------------------------
    def join(self) -> _Member:
        number = len(self.members)
        clients = _Clients(self.cluster, number)
        executor = SimExecutor(self.concurrency, self.run_length)
        executor.here = number % 2 == 1  # fair share by waits, or by free slots
        completions = SimCompletions(lambda timeout: self._waiting(number, timeout))
        work = Work(
            self._handler(number), OUT, batch_size=self.config.batch_size, ordering=self.ordering
        )
        loop = _Loop(
            self.settings,
            work,
            executor,
            clock=self.clock,
            kafka=clients,
            completions=completions,
            threaded_outputs=False,
            wall=self.clock,
        )
        loop.member, loop.checker = number, self.checker
        loop.stream_outputs = self.config.stream_outputs
        executor_check = self._dispatch_check(number, loop)
        executor._on_submit = executor_check
        if self.config.handover:
            executor.hand_over = lambda: self.rng.random() < 0.1
        member = _Member(number, loop, executor, clients)
        self.members.append(member)
        loop.open()
        self._note(f"join m{number}")
        return member

    def _dispatch_check(self, number: int, loop: _Loop) -> Callable[[list[Entry]], float | None]:
        """Checks a run handed to the executor; returns until when it hangs (a starving
        partition's oldest record, until the world releases it)."""

        def check(run: list[Entry]) -> float | None:
            hangs = False
            for entry in run:
                self.checker.dispatched(
                    number,
                    entry.part.tp,
                    entry.offset,
                    entry.part.phase is PartPhase.OPEN
                    and loop.ledger.parts.get(entry.part.tp) is entry.part,
                    self.clock(),
                )
                hangs = hangs or (entry.part.tp, entry.offset) == self.starving
            return math.inf if hangs else None

        return check

    def release_starving(self) -> None:
        """The starving record's handler returns at last."""
        if self.starving is None:
            return
        for member in self.live():
            for chunk in member.executor.pending:
                if any((e.part.tp, e.offset) == self.starving for e in chunk.entries):
                    chunk.hung_until = None
        self._note(f"release {self.starving[0][0]}[{self.starving[0][1]}]@{self.starving[1]}")
        self.starving = None

    def _handler(self, number: int) -> Callable[..., Any]:
        if self.config.handler is not None:
            from parafka.testing.sim.user import wrap_handler

            return wrap_handler(self, number, self.config.handler)
        checker, plans = self.checker, self.plans
        max_attempts, exactly_once = self.config.max_attempts, self.config.exactly_once
        observe_letters = self.observe_letters

        parking, tries = self.config.retry_topic, self.tries

        def handle(record: Record) -> Output | None:
            tp, offset, attempt = (record.topic, record.partition), record.offset, record.attempt
            retry_at = None
            if parking:  # attempts counted over consumers and the retry topic
                if record.topic == RETRY:
                    parked = origin(record.headers)
                    assert parked is not None, "a record of the retry topic without its origin"
                    retry_at = (record.partition, record.offset)
                    tp, offset = (TOPIC, parked.partition), parked.offset
                attempt = tries[(tp, offset)] = tries.get((tp, offset), 0) + 1
            observe_letters()  # a dead letter acknowledged in this very round frees its shard
            checker.started(number, tp, offset)
            plan = plans[(tp, offset)]
            if plan.fails_on(attempt) and attempt >= max_attempts and exactly_once:
                checker.gave_up.add((number, tp, offset))
            if attempt in plan.kills:
                raise KillWorker()
            if plan.poison or attempt <= plan.fails:
                raise SimFailure(f"attempt {attempt} of {offset} fails")
            checker.succeeded_on(tp, offset, number, self.clock())
            if not plan.output:
                return None
            body: dict[str, int] = {"m": number, "p": tp[1], "o": offset}
            if retry_at is not None:
                body["r"], body["q"] = retry_at
            return Output(json.dumps(body).encode(), key=record.key)

        def handle_batch(records: list[Record]) -> list[Output] | None:
            """The same plans for a batch handler: one call fails when any of its records'
            attempts is planned to fail (the engine then splits the batch to find it), and
            succeeds for all of them otherwise. A planned kill fails the call instead:
            a batch worker's death is charged to every record of its chunk
            (executor.py), which no record's own plan foresees, so the blame check could
            not tell who is innocent."""
            observe_letters()
            checker.started_call(number, records)
            for record in records:
                if plans[((record.topic, record.partition), record.offset)].fails_on(
                    record.attempt
                ):
                    checker.failed_call(number, records, max_attempts)
                    raise SimFailure(f"attempt {record.attempt} of {record.offset} fails")
            now, outputs = self.clock(), []
            for record in records:
                tp = (record.topic, record.partition)
                checker.succeeded_on(tp, record.offset, number, now)
                if plans[(tp, record.offset)].output:
                    body = {"m": number, "p": record.partition, "o": record.offset}
                    outputs.append(Output(json.dumps(body).encode(), key=record.key))
            return outputs or None

        return handle if self.config.batch_size is None else handle_batch

    def live(self) -> list[_Member]:
        return [m for m in self.members if m.alive]

    def crash(self, member: _Member) -> None:
        member.alive = False
        assert member.clients.made is not None
        self.checker.released(member.number, member.clients.made.assignment, self.clock())
        self.cluster.crash(member.clients.made)
        for producer in member.clients.producers:
            self.cluster.crash(producer)
        self._note(f"crash m{member.number}")

    def leave(self, member: _Member) -> None:
        self._note(f"leave m{member.number}")
        member.alive = False
        loop = member.loop
        loop.stop()
        loop.drain()
        loop.close()
        assert member.clients.made is not None
        self.checker.released(member.number, member.clients.made.assignment, self.clock())

    # -- what happens while a consumer waits ------------------------------------------------
    def _waiting(self, number: int, timeout: float) -> None:
        """A consumer waits for completions (in a revoke, a drain, or idle): its work goes
        on and time passes."""
        member = self.members[number]
        self._run_some(member)
        self._pump(member)
        self.clock.advance(max(timeout, 0.001))

    def _pump(self, member: _Member) -> None:
        """Flush a consumer's outputs; note what reached the output topic, and when (the
        only place outputs are delivered, so the time is exact)."""
        member.loop.outputs.pump(0.0)
        self._observe_outputs()

    def _observe_outputs(self) -> None:
        """Outputs new in the output topic, as the checker's reader sees them (exactly-once:
        read_committed, so only committed transactions' outputs)."""
        if self.config.exactly_once:
            outputs = self.cluster.messages(OUT, 0, isolation="read_committed")
        elif self.cluster.end_offset((OUT, 0)) > self._out_seen:
            outputs = self.cluster.messages(OUT, 0, isolation="read_uncommitted")
        else:
            return
        if len(outputs) > self._out_seen:
            self.checker.new_outputs(outputs[self._out_seen :], self.clock())
            self._out_seen = len(outputs)

    def _run_some(self, member: _Member) -> bool:
        ready = member.executor.runnable(self.clock())
        if not ready:
            return False
        member.executor.run(self.rng.choice(ready))
        return True

    # -- the schedule -------------------------------------------------------------------
    def chaos_event(self) -> None:
        rng, live = self.rng, self.live()
        if self.config.operator and live and rng.random() < 0.06:
            self._operator(rng.choice(live))
            return
        roll = rng.random()
        if not live or (roll < 0.01 and len(live) < self.config.max_consumers):
            self.join()
        elif roll < 0.45:
            self._step(rng.choice(live))
        elif roll < 0.70:
            member = rng.choice(live)
            ready = member.executor.runnable(self.clock())
            if ready:
                index = rng.choice(ready)
                if rng.random() < 0.03:  # this handler hangs for a while
                    member.executor.pending[index].hung_until = self.clock() + rng.uniform(1, 20)
                    self._note(
                        f"hang m{member.number} chunk {member.executor.pending[index].number}"
                    )
                else:
                    member.executor.run(index)
        elif roll < 0.80:
            self._pump(rng.choice(live))
        elif roll < 0.93:
            self.clock.advance(rng.uniform(0, 0.5))
        else:
            self._fault(rng.choice(live))

    def _operator(self, member: _Member) -> None:
        """An operator acts on one consumer through its control plane: pause or resume a
        partition, skip or park a record it may hold, applied between two of the loop's
        rounds, as from the dashboard."""
        rng, loop, checker = self.rng, member.loop, self.checker
        steering = loop.steering
        kind = rng.choice(("pause", "resume", "skip", "skip", "park", "park"))
        if kind == "resume":
            if not steering.paused:
                return
            tp = rng.choice(sorted(steering.paused))
            command = steering.post("resume", *tp)
        else:
            tp = (TOPIC, rng.randrange(self.config.partitions))
            offset = None
            if kind != "pause":
                keys = checker.inputs[tp]
                if not keys:
                    return
                offset = rng.randrange(len(keys))
                part = loop.ledger.parts.get(tp)
                if part is not None and part.offsets.position is not None and rng.random() < 0.5:
                    offset = part.offsets.position  # its oldest unfinished record, mostly
                if kind == "park":  # an operator's dead letter is no engine's blame
                    checker.innocent.discard((tp, offset))
            command = steering.post(kind, *tp, offset)
        # What ControlLoop.step does first with a posted command; the checker learns of a
        # skip before any later record of its shard can start.
        steering.step(loop)
        answer = command.answer
        self._note(f"operator m{member.number} {kind} {command.target}: {answer}")
        if answer is not None and answer.ok and command.offset is not None:
            checker.overruled.add((tp, command.offset))
            if kind == "skip":
                checker.skipped.add((tp, command.offset))
            elif self.config.exactly_once:  # its letter waits for the transaction, in order
                checker.gave_up.add((member.number, tp, command.offset))

    def resume_all(self) -> None:
        """The calm phase: operators lift their pauses (everything must be committed)."""
        for member in self.live():
            for tp in sorted(member.loop.steering.paused):
                member.loop.steering.post("resume", *tp)
                self._note(f"operator m{member.number} resume {tp[0]}[{tp[1]}]")

    def _fault(self, member: _Member) -> None:
        rng, faults = self.rng, self.cluster.faults
        kind = rng.choice(("crash", "leave", "expire", "commit", "deliver", "delay", "join"))
        if kind == "crash" and len(self.live()) > 1:
            self.crash(member)
        elif kind == "leave" and len(self.live()) > 1:
            self.leave(member)
        elif kind == "expire":
            assert member.clients.made is not None
            self.checker.expired(member.number, member.clients.made.assignment, self.clock())
            self.cluster.expire(member.clients.made)
            self._note(f"expire m{member.number}")
        elif kind == "commit":
            faults.fail_commits(rng.randint(1, 3))
            self._note("fail commits")
        elif kind == "deliver":
            faults.fail_deliveries(rng.randint(1, 3), "MSG_TIMED_OUT")
            self.checker.blame_only_failures(set())  # a refused output costs an attempt
            self._note("fail deliveries")
        elif kind == "delay":
            faults.delivery_delay = rng.choice((0.0, 0.2, 1.5))
            self._note(f"delay deliveries {faults.delivery_delay}")
        elif kind == "join" and len(self.live()) < self.config.max_consumers:
            self.join()

    def _step(self, member: _Member) -> None:
        """One round of a consumer; one that stops (a record failed for good: the stop
        policy, a dead letter refused) drains and closes, as run() would, and a new
        consumer takes its place, as a supervisor would start one."""
        try:
            member.loop.step()
        except HandedOver:  # the rest of the round is the next control thread's
            self._note(f"m{member.number} handed over")
        if member.loop.stopping:
            self._note(f"m{member.number} stops: {member.loop.failure}")
            self.leave(member)
            self.join()

    def calm_round(self) -> None:
        """Every live consumer steps, runs its work and flushes; time moves on."""
        for member in self.live():
            self._step(member)
            if not member.alive:
                continue
            while self._run_some(member):
                pass
            self._pump(member)
        self.clock.advance(0.1)

    def idle(self) -> bool:
        """Nothing held, sent or running anywhere, every partition committed to its end."""
        for member in self.live():
            loop = member.loop
            if loop.ledger.held or not loop.outputs.idle or member.executor.pending:
                return False
            if loop.parking is not None and loop.parking.pending:
                return False
        if self.config.retry_topic and any(
            (self.cluster.committed(GROUP, RETRY, p).offset or 0)
            != self.cluster.end_offset((RETRY, p))
            for p in range(2)
        ):
            return False
        return all(
            offset == len(keys)
            for offset, keys in zip(
                self._committed().values(), self.checker.inputs.values(), strict=True
            )
        )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        """The invariants, after every event."""
        checker, eo = self.checker, self.config.exactly_once
        if checker.broken is not None:
            raise checker.broken
        self.observe_letters()
        self.observe_parked()
        if eo:
            self._observe_outputs()
        for partition in range(self.config.partitions):
            offset = self.cluster.committed(GROUP, TOPIC, partition)
            checker.committed((TOPIC, partition), offset.offset, offset.metadata)
            if eo:
                checker.transactional((TOPIC, partition), offset.offset)
        for member in self.live():
            ledger = member.loop.ledger
            # Counted twice, independently: the ledger's count, and the records each
            # partition's offsets hold unfinished (finished ones awaiting a transaction too).
            pending = sum(part.offsets.pending_count for part in ledger.parts.values())
            checker.memory(member.number, max(ledger.held, pending), self.settings.buffer_limit)

    def observe_letters(self) -> None:
        """Dead letters new in their topic (exactly-once: committed ones only)."""
        if self.cluster.end_offset((DLQ, 0)) <= self._dlq_seen:
            return
        isolation = "read_committed" if self.config.exactly_once else "read_uncommitted"
        letters = self.cluster.messages(DLQ, 0, isolation=isolation)
        if len(letters) > self._dlq_seen:
            self.checker.new_dead_letters(letters[self._dlq_seen :])
            self._dlq_seen = len(letters)

    def observe_parked(self) -> None:
        """Records new in the retry topic: done for their source offset (not for good)."""
        if not self.config.retry_topic:
            return
        for partition in range(2):
            seen = self._parked_seen.get(partition, 0)
            if self.cluster.end_offset((RETRY, partition)) <= seen:
                continue
            parked = self.cluster.messages(RETRY, partition, isolation="read_uncommitted")
            for message in parked[seen:]:
                found = origin(message.headers())
                assert found is not None
                self.checker.parked.add(((TOPIC, found.partition), found.offset))
            self._parked_seen[partition] = len(parked)

    def _committed(self) -> dict[TP, int | None]:
        return {
            (TOPIC, p): self.cluster.committed(GROUP, TOPIC, p).offset
            for p in range(self.config.partitions)
        }

    def _note(self, what: str) -> None:
        self.trace.append(f"#{self._event} t={self.clock():.3f} {what}")

    # -- the run --------------------------------------------------------------------------
    def run(self, chaos_events: int | None = None) -> None:
        """The chaos phase, then the calm phase until idle; Violation on any breach."""
        chaos = self.config.chaos_events if chaos_events is None else chaos_events
        for _ in range(2):
            self.join()
        for self._event in range(chaos):
            self.chaos_event()
            self.check()
        self.cluster.faults.clear()
        self._note("calm")
        if self.config.operator:
            self.resume_all()
        if not self.live():
            self.join()
        if self.starving is not None:
            starved = self.starving[0]
            # Exactly-once in `key`/`unordered` order, the records finished behind the hung
            # one wait for it, held for the transaction, and fill the buffer: the other
            # partitions stop until it returns (a known limit: docs/architecture.md). The
            # buffer bound must hold all along; the others' progress is not asked for.
            others_wait = self.config.exactly_once and self.ordering != "partition"
            if others_wait:
                self._calm_until(lambda: False, rounds=100)
            elif not self._calm_until(self._others_committed):
                raise Violation(
                    f"starved: while {starved[0]}[{starved[1]}]@{self.starving[1]} hangs, the "
                    f"other partitions are not all committed to their end ({self._committed()})"
                )
            self.release_starving()
        if not self._calm_until(self.idle):
            held = {m.number: m.loop.ledger.held for m in self.live()}
            raise Violation(f"stall: not idle after the calm phase (held per consumer {held})")
        self.checker.final(self._committed())
        for member in self.live():
            self.leave(member)
        if self.config.check is not None:
            isolation = "read_committed" if self.config.exactly_once else "read_uncommitted"
            try:
                self.config.check(self.cluster.messages(OUT, 0, isolation=isolation))
            except AssertionError as exc:
                raise Violation(f"check: {exc}") from exc

    def _calm_until(self, done: Callable[[], bool], rounds: int | None = None) -> bool:
        """Calm rounds until `done()` (False if the calm phase's rounds run out)."""
        for _ in range(self.config.calm_rounds if rounds is None else rounds):
            self._event += 1
            self.calm_round()
            self.check()
            if done():
                return True
        return False

    def _others_committed(self) -> bool:
        """Every partition but the starving one is committed to its end."""
        assert self.starving is not None
        return all(
            offset == len(self.checker.inputs[tp])
            for tp, offset in self._committed().items()
            if tp != self.starving[0]
        )

    def describe(self) -> str:
        shape = " exactly-once" if self.config.exactly_once else ""
        shape += " starving" if self.config.starve else ""
        return (
            f"seed {self.config.seed}{shape}: ordering={self.ordering} "
            f"assignment={self.strategy} run_length={self.run_length} "
            f"concurrency={self.concurrency} max_buffered={self.max_buffered}"
            + (f" key_rate={self.config.key_rate:g}" if self.config.key_rate else "")
            + (" concurrency=auto" if self.config.adaptive else "")
            + (" retry_topic" if self.config.retry_topic else "")
            + (" operator" if self.config.operator else "")
            + (" handover" if self.config.handover else "")
        )


_SETTINGS: dict[
    tuple[str, str, int, int, bool, int | None, float | None, int | None, bool], Settings
] = {}


def _settings(
    ordering: str,
    strategy: str,
    max_buffered: int,
    max_attempts: int,
    exactly_once: bool,
    batch_size: int | None,
    key_rate: float | None,
    auto_up_to: int | None,
    retry_topic: bool = False,
) -> Settings:
    """Settings of a simulated consumer (made once per shape: checking them starts a
    librdkafka client, and refuses what the library refuses)."""
    key = (
        ordering, strategy, max_buffered, max_attempts, exactly_once, batch_size, key_rate,
        auto_up_to, retry_topic,
    )  # fmt: skip
    if key not in _SETTINGS:
        _SETTINGS[key] = Settings(
            bootstrap_servers="memory",
            group_id=GROUP,
            topics=(TOPIC,),
            ordering=ordering,  # type: ignore[arg-type]
            output_topic=OUT,
            dead_letter_topic=DLQ,
            kafka_config={"partition.assignment.strategy": strategy},
            retry=RetryPolicy(max_attempts=max_attempts, initial_backoff=0.05, jitter=0.0),
            exactly_once=exactly_once,
            batch_size=batch_size,
            max_buffered=max_buffered,
            commit_interval=0.3,
            shutdown_timeout=5.0,
            revoke_timeout=2.0,
            connect_timeout=1.0,
            key_rate=key_rate,
            concurrency="auto" if auto_up_to else 16,
            max_concurrency=auto_up_to or 128,
            retry_topic=RETRY if retry_topic else None,
            park_attempts=3,
            park_backoff=0.2,
        )
    return _SETTINGS[key]


def quiet_logs() -> None:
    """The engine's warnings are the simulator's everyday events: keep them off stderr."""
    logging.getLogger("parafka").setLevel(logging.CRITICAL)


def run_seed(config: SimConfig, chaos_events: int | None = None) -> World:
    """Run one seed; raises Violation (with the world's trace attached) on a breach."""
    world = World(config)
    try:
        try:
            world.run(chaos_events)
        except Violation:
            raise
        except Exception as exc:  # the engine itself broke: a violation too
            world._note(f"raised {exc!r}")
            raise Violation(f"crash: the engine raised {type(exc).__name__}: {exc}") from exc
    except Violation as exc:
        exc.world = world  # type: ignore[attr-defined]
        raise
    return world


def shortest_failing(config: SimConfig) -> tuple[int, Violation] | None:
    """The fewest chaos events with which `config.seed` still breaks an invariant (the
    same seed, a shorter chaos phase), by bisection; None if it does not break."""
    try:
        run_seed(config)
    except Violation as first:
        failing: tuple[int, Violation] = (config.chaos_events, first)
    else:
        return None
    low, high = 0, config.chaos_events
    while low < high:
        middle = (low + high) // 2
        try:
            run_seed(config, middle)
        except Violation as exc:
            failing, high = (middle, exc), middle
        else:
            low = middle + 1
    return failing


def seeds(spec: str) -> Sequence[int]:
    """'N' (seeds 0..N-1) or 'A:B' (seeds A..B-1)."""
    if ":" in spec:
        start, end = spec.split(":", 1)
        return range(int(start), int(end))
    return range(int(spec))
