"""The simulator's invariants: what must hold after every step of any schedule. Pure.

`Checker` is told what the world observes (handler starts and successes, dispatches,
partition ownership, outputs and dead letters as they appear in the cluster's logs,
committed offsets) and raises `Violation` the moment a guarantee breaks:

- committed: a group's committed offset never passes a record that is not done (done:
  its handler succeeded and its output reached the output topic, or it was dead-lettered),
  and every offset its commit metadata calls done is done;
- revoked: no record is handed to an executor for a partition its consumer no longer owns;
- order: a record of an ordered shard starts only after every older record of its shard
  succeeded (or was dead-lettered), on whichever consumer;
- memory: a consumer never holds more records than its buffer limit;
- blame: while no delivery can fail, a record whose own attempts succeed in time is never
  dead-lettered (another record's failure, or its worker's death, is not charged to it);
- exactly-once (with `exactly_once`, outputs and dead letters as a read_committed reader
  sees them): each record's output or dead letter is seen once, never twice, across
  crashes, rebalances and aborts; and a committed transaction's offsets and outputs agree:
  nothing is visible for a record at or above its partition's committed offset;
- at the end (`final`): every record is done, every partition committed to its end, and per
  key the outputs written by the partition's owners take effect in offset order (the last
  copy of each record's output comes after the last copy of every older one of its key).
  An owner's output is one written by a consumer that owned the partition, as the cluster
  saw it, from the record's hand-over to its executor to the delivery. A record whose last
  effect is its dead letter (or an operator's skip or park) is left out: the output an
  earlier run left before a rebalance replayed it cannot be taken back.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from parafka.core.codec import decode_completed
from parafka.core.deadletter import OFFSET, PARTITION, header_text
from parafka.core.record import Record
from parafka.core.seam import TP, Message

Stamp = tuple[float, int]  # (the clock, the checker's count of observations)
NEVER: Stamp = (float("inf"), 0)


class Violation(AssertionError):
    """A guarantee broke in a simulated schedule."""


@dataclass
class Output:
    """An output record as it appeared in the output topic."""

    member: int
    tp: TP
    offset: int
    key: bytes | None
    owned: bool  # written while its consumer owned the partition


@dataclass
class Checker:
    """Facts observed so far and the invariants over them."""

    topic: str
    ordering: str
    inputs: dict[TP, list[bytes | None]]  # partition -> key of each offset
    with_output: set[tuple[TP, int]]  # records whose handler returns an output
    succeeded: set[tuple[TP, int]] = field(default_factory=set)
    dead: set[tuple[TP, int]] = field(default_factory=set)
    skipped: set[tuple[TP, int]] = field(default_factory=set)  # by an operator: done
    # Skipped or parked by an operator: whatever output an earlier attempt left stays
    # where it is (a later run would have repeated it in order): no order of effects
    overruled: set[tuple[TP, int]] = field(default_factory=set)
    delivered: set[tuple[TP, int]] = field(default_factory=set)
    outputs: list[Output] = field(default_factory=list)
    # A dead-lettered record -> how many outputs were seen before its (latest) letter
    lettered: dict[tuple[TP, int], int] = field(default_factory=dict)
    # (member, partition) -> spans it owned it, as it knew (from its callbacks) and as the
    # cluster did (which ends a span at once when its session expires, before it hears)
    # Times are stamped in the order the checker heard of them (_stamp): a record handed
    # over and its partition re-assigned at one instant of the clock stay in their order.
    _owners: dict[tuple[int, TP], list[list[Stamp]]] = field(default_factory=dict)
    _cluster_owners: dict[tuple[int, TP], list[list[Stamp]]] = field(default_factory=dict)
    _verified: dict[TP, int] = field(default_factory=dict)  # offsets below are done
    _ran_at: dict[tuple[int, TP, int], Stamp] = field(default_factory=dict)  # last success
    _handed_at: dict[tuple[int, TP, int], Stamp] = field(default_factory=dict)  # last dispatch
    _heard: int = 0  # observations so far: the second half of a stamp
    innocent: set[tuple[TP, int]] = field(default_factory=set)  # see blame_only_failures
    # Exactly-once: outputs and dead letters are observed as a read_committed reader sees
    # them, each must appear once, and none at or above its partition's committed offset.
    exactly_once: bool = False
    broken: Violation | None = None  # raised inside a handler: the world raises it again
    # Exactly-once: a record whose last attempt failed on a member is dead-lettered there
    # as far as its shard is concerned (its letter waits for the transaction, in order).
    gave_up: set[tuple[int, TP, int]] = field(default_factory=set)
    _visible: dict[TP, int] = field(default_factory=dict)  # highest offset seen committed
    _runs: dict[tuple[TP, int], object] = field(default_factory=dict)  # whose outputs
    # --retry-topic: records seen parked there (done for their source offset, not yet
    # for good), and how often a committed offset passed one before it was done.
    retry_topic: str | None = None
    parked: set[tuple[TP, int]] = field(default_factory=set)
    passed_parked: int = 0
    # (retry partition, offset) of records parked by a member that had lost their source
    # partition by then (a zombie, as the cluster saw it): their runs are not the owner's
    # effects, as a zombie's outputs are not.
    zombie_parks: set[tuple[int, int]] = field(default_factory=set)

    # -- observations -----------------------------------------------------------------
    def _stamp(self, now: float) -> Stamp:
        self._heard += 1
        return (now, self._heard)

    def owned(self, member: int, tps: Iterable[TP], now: float) -> None:
        at = self._stamp(now)
        for tp in tps:
            for owners in (self._owners, self._cluster_owners):
                owners.setdefault((member, tp), []).append([at, NEVER])

    def released(self, member: int, tps: Iterable[TP], now: float) -> None:
        """The member gave the partitions up (revoked, lost, closed, crashed)."""
        tps = list(tps)
        self.expired(member, tps, now)
        _end(self._owners, member, tps, self._stamp(now))

    def expired(self, member: int, tps: Iterable[TP], now: float) -> None:
        """The cluster gave the member's partitions to others; it has not heard yet."""
        _end(self._cluster_owners, member, tps, self._stamp(now))

    def owns(self, member: int, tp: TP, now: Stamp, since: Stamp | None = None) -> bool:
        """Whether `member` owned `tp` at `now` as it knew; with `since`, as the cluster
        knew, without a break from `since` to `now`."""
        if since is None:
            return any(start <= now < end for start, end in self._owners.get((member, tp), ()))
        spans = self._cluster_owners.get((member, tp), ())
        return any(start <= since and now < end for start, end in spans)

    def started(
        self, member: int, tp: TP, offset: int, together: frozenset[int] = frozenset()
    ) -> None:
        """A handler starts on record `offset` of `tp` (order invariant); `together`: the
        offsets of `tp` handed to the same batch call (they run as one)."""
        if self.ordering == "unordered":
            return
        key = self.inputs[tp][offset]
        for older in range(offset):
            if self.ordering == "key" and self.inputs[tp][older] != key:
                continue
            if older in together or (member, tp, older) in self.gave_up:
                continue
            if (
                (tp, older) not in self.succeeded
                and (tp, older) not in self.dead
                and ((tp, older) not in self.skipped)
            ):
                # Raised in a handler, where the engine takes it for a failure: kept too.
                self.broken = self.broken or Violation(
                    f"order: consumer {member} started {_name(tp, offset)} before "
                    f"{_name(tp, older)} of its {self._shard_name()} succeeded"
                )
                raise self.broken

    def started_call(self, member: int, records: Sequence[Record]) -> None:
        """A handler call starts on `records` (`started` for each): the offsets of a
        partition handed to the same call run as one."""
        together: dict[TP, set[int]] = {}
        for record in records:
            together.setdefault((record.topic, record.partition), set()).add(record.offset)
        for record in records:
            tp = (record.topic, record.partition)
            self.started(member, tp, record.offset, frozenset(together[tp]))

    def failed_call(self, member: int, records: Sequence[Record], max_attempts: int) -> None:
        """A handler call on `records` failed. Exactly-once: those at their last attempt
        are dead-lettered in the transaction, as far as their shards are concerned."""
        if self.exactly_once:
            for record in records:
                if record.attempt >= max_attempts:
                    self.gave_up.add((member, (record.topic, record.partition), record.offset))

    def succeeded_on(self, tp: TP, offset: int, member: int = -1, now: float = 0.0) -> None:
        self.succeeded.add((tp, offset))
        self._ran_at[(member, tp, offset)] = self._stamp(now)

    def dispatched(self, member: int, tp: TP, offset: int, open_part: bool, now: float) -> None:
        """A record is handed to member's executor (revoke invariant)."""
        at = self._stamp(now)
        if not open_part or not self.owns(member, tp, at):
            raise Violation(
                f"revoked: consumer {member} handed {_name(tp, offset)} to its executor "
                "after it stopped owning the partition"
            )
        self._handed_at[(member, tp, offset)] = at

    def parked_at(self, member: int, tp: TP, at: tuple[int, int], now: float) -> None:
        """`member` parked a record of `tp` at `at` of the retry topic (acknowledged)."""
        then = self._stamp(now)
        if not self.owns(member, tp, then, since=then):
            self.zombie_parks.add(at)

    def new_outputs(self, messages: Iterable[Message], now: float) -> None:
        at = self._stamp(now)
        for message in messages:
            run, records = sources(message)
            ran_on = None  # the retry topic's partition it ran from, if it did
            zombie = False
            if self.retry_topic is not None and run is None:
                body = json.loads(message.value() or b"{}")
                if "r" in body:
                    ran_on = (self.retry_topic, body["r"])
                    zombie = (body["r"], body["q"]) in self.zombie_parks
            for member, partition, offset in records:
                tp = (self.topic, partition)
                if self.exactly_once:
                    self._once(tp, offset, "output", run)
                    owned = True  # a read_committed reader sees only committed effects
                else:
                    # An effect of the owner only if it owned the partition from the
                    # record's hand-over to its executor to the delivery: not a zombie's,
                    # nor a late one from an earlier assignment (handed over in it, run
                    # after the cluster gave the partition back, before the poll told).
                    run_by = (member, tp, offset)
                    since = self._handed_at.get(run_by, self._ran_at.get(run_by, at))
                    owned = not zombie and self.owns(member, ran_on or tp, at, since=since)
                self.outputs.append(Output(member, tp, offset, message.key(), owned))
                self.delivered.add((tp, offset))

    def _once(self, tp: TP, offset: int, what: str, run: object = None) -> None:
        """Exactly-once: a record's effect (the outputs of one handler call, or its dead
        letter) is seen by a read_committed reader once."""
        record = (tp, offset)
        if record in self.dead or (record in self.delivered and what == "dead letter"):
            raise Violation(
                f"exactly-once: a read_committed reader sees a second {what} of "
                f"{_name(tp, offset)} (it was already dead-lettered or output)"
            )
        if what == "output" and record in self._runs and (run is None or self._runs[record] != run):
            raise Violation(
                f"exactly-once: a read_committed reader sees the output of {_name(tp, offset)} "
                "twice"
            )
        if what == "output":
            self._runs[record] = run
        self._visible[tp] = max(self._visible.get(tp, -1), offset)

    def transactional(self, tp: TP, committed: int | None) -> None:
        """Exactly-once: the group's committed offset of `tp` and the committed outputs
        agree (both come from the same transactions)."""
        seen = self._visible.get(tp, -1)
        if seen >= (committed or 0):
            raise Violation(
                f"exactly-once: {_name(tp, seen)} has a committed output or dead letter, but "
                f"the group's committed offset of {tp[0]}[{tp[1]}] is {committed}: it will "
                "run again and be seen twice"
            )

    def new_dead_letters(self, messages: Iterable[Message]) -> None:
        for message in messages:
            headers = message.headers()
            partition, offset = header_text(headers, PARTITION), header_text(headers, OFFSET)
            assert partition is not None and offset is not None
            record = ((self.topic, int(partition)), int(offset))
            if self.exactly_once:
                self._once(*record, "dead letter")
            if record in self.innocent:
                raise Violation(
                    f"blame: {_name(*record)} was dead-lettered, but its own attempts would "
                    "all have succeeded in time (another record's failure was charged to it)"
                )
            self.dead.add(record)
            self.lettered[record] = len(self.outputs)

    def blame_only_failures(self, innocent: set[tuple[TP, int]]) -> None:
        """From now on, these records may not be dead-lettered: their handler succeeds
        within the attempts allowed, and nothing else (a refused delivery) can fail them."""
        self.innocent = innocent

    # -- invariants -----------------------------------------------------------------------
    def done(self, tp: TP, offset: int) -> bool:
        record = (tp, offset)
        if record in self.dead or record in self.skipped:
            return True
        if record in self.with_output:
            return record in self.delivered
        return record in self.succeeded

    def committed(self, tp: TP, offset: int | None, metadata: str) -> None:
        """The group's committed position of `tp` (committed invariant)."""
        if offset is None:
            return
        start = self._verified.get(tp, 0)
        for older in range(start, offset):
            if (tp, older) in self.parked and not self.done(tp, older):
                self.passed_parked += 1  # parked: done for its offset, not yet for good
                continue
            if not self.done(tp, older):
                raise Violation(
                    f"committed: offset {offset} of {tp[0]}[{tp[1]}] is committed but "
                    f"{_name(tp, older)} is not done"
                )
        self._verified[tp] = max(start, offset)
        for finished in decode_completed(offset, metadata):
            if not self.done(tp, finished) and (tp, finished) not in self.parked:
                raise Violation(
                    f"committed: the metadata at {tp[0]}[{tp[1]}]@{offset} calls "
                    f"{_name(tp, finished)} done, but it is not"
                )

    @staticmethod
    def memory(member: int, held: int, limit: int) -> None:
        if held > limit:
            raise Violation(f"memory: consumer {member} holds {held} records, over {limit}")

    def final(self, committed: dict[TP, int | None]) -> None:
        """Once the world is calm and idle: nothing lost, all committed, order of effects."""
        for tp, keys in self.inputs.items():
            for offset in range(len(keys)):
                if not self.done(tp, offset):
                    raise Violation(f"lost: {_name(tp, offset)} was never done")
            if committed.get(tp) != len(keys):
                raise Violation(
                    f"stall: {tp[0]}[{tp[1]}] committed {committed.get(tp)}, not its end "
                    f"{len(keys)}"
                )
        if self.ordering != "unordered":
            self._effects_in_order()

    def _effects_in_order(self) -> None:
        last: dict[tuple[TP, int], int] = {}
        for position, out in enumerate(self.outputs):
            if out.owned:
                last[(out.tp, out.offset)] = position
        by_shard: dict[Hashable, list[tuple[int, int]]] = defaultdict(list)
        for (tp, offset), position in last.items():
            if (tp, offset) in self.overruled:
                continue
            if self.lettered.get((tp, offset), -1) > position:
                # Its last effect is its dead letter: the output an earlier run left (before
                # a rebalance replayed it) stays where it was, as an operator's park leaves it.
                continue
            shard: Hashable = (tp, self.inputs[tp][offset]) if self.ordering == "key" else tp
            by_shard[shard].append((offset, position))
        for name, items in by_shard.items():
            items.sort()
            for (older, at), (newer, later) in itertools.pairwise(items):
                if at > later:
                    raise Violation(
                        f"order of effects: in {self._shard_name()} {name!r} the output of "
                        f"offset {older} took effect after that of offset {newer}"
                    )

    def _shard_name(self) -> str:
        return "key" if self.ordering == "key" else "partition"


SOURCE_HEADER = "parafka.sim.source"


def sources(message: Message) -> tuple[object, list[tuple[int, int, int]]]:
    """The handler call an output came from and its input record(s), (member, partition,
    offset): from the `parafka.sim.source` header (a user's handler: JSON {"run": n,
    "from": [[m, p, o], ...]}, several records for a batch's outputs), else from the
    simulated handler's JSON body (one output per call: no run number)."""
    for name, value in message.headers() or ():
        if name == SOURCE_HEADER and value is not None:
            tag = json.loads(value if isinstance(value, str) else value.decode())
            return tag["run"], [(m, p, o) for m, p, o in tag["from"]]
    body = json.loads(message.value() or b"{}")
    return None, [(body["m"], body["p"], body["o"])]


def _end(
    owners: dict[tuple[int, TP], list[list[Stamp]]], member: int, tps: Iterable[TP], at: Stamp
) -> None:
    for tp in tps:
        spans = owners.get((member, tp))
        if spans and spans[-1][1] == NEVER:
            spans[-1][1] = at


def _name(tp: TP, offset: int) -> str:
    return f"{tp[0]}[{tp[1]}]@{offset}"
