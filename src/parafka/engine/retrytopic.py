"""The retry topic's I/O: park records, hold back records not yet due, keep the fences.

The control loop owns one `RetryTopic` when `retry_topic` is set. Its parts:

- `admit(runs)`: of the runs just taken, a record of the retry topic not yet due waits
  (the ledger's rate_wait: its key waits, other keys go on, and the loop sleeps until the
  earliest due time: no polling), and a source record whose key is fenced is parked
  behind (the ledger's park_behind) instead of running;
- `send(entry, error)`: write a record to the retry topic; `on_settled(entry, error)` is
  called from `poll()` once the write is acknowledged (the fence of a source record's key
  then names the offset written);
- `rebuild(tps)`: on assignment, before any record of `tps` is dispatched, the fences of
  the source partitions `tps` are read back from the retry topic;
- `lift(now)`: while fences exist, every LIFT_EVERY seconds, read the group's committed
  offsets of the retry topic and lift the fences they passed.

The pure parts (headers, fences) are in parking.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from parafka.core.entry import Entry
from parafka.core.ledger import Actions, Ledger
from parafka.core.parking import BEHIND, FAILED, Fences, due_of, parked_record
from parafka.core.seam import TP, ClientError, Consumer, Kafka, Message, Producer
from parafka.engine.settings import Settings
from parafka.executors.affinity import unpinned
from parafka.kafka.config import producer_config

log = logging.getLogger(__name__)

LIFT_EVERY = 0.5  # seconds between two reads of the retry topic's committed offsets
REBUILD_TIMEOUT = 60.0  # seconds a fence rebuild may take to read the retry topic, at least
# (entry, error, where it was written: (retry partition, offset), None when refused)
Settled = Callable[[Entry, BaseException | None, tuple[int, int] | None], None]


def ordered_producer_config(config: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """A producer whose retried sends can never reorder a key's parked records: idempotent,
    unless the user's settings rule that out (acks other than all, idempotence turned off),
    then one request in flight per connection."""
    ordered = dict(config)
    acks = str(ordered.get("acks", ordered.get("request.required.acks", "all"))).lower()
    idempotence = str(user.get("enable.idempotence", "true")).lower() in ("true", "1")
    if idempotence and acks in ("all", "-1"):
        ordered["enable.idempotence"] = True
        in_flight = int(ordered.get("max.in.flight.requests.per.connection", 5))
        ordered["max.in.flight.requests.per.connection"] = min(in_flight, 5)
    else:
        ordered["max.in.flight.requests.per.connection"] = 1
    return ordered


class RetryTopic:
    """Parking on `settings.retry_topic`, for one control loop."""

    def __init__(
        self,
        settings: Settings,
        kafka: Kafka,
        consumer: Callable[[], Consumer],
        on_settled: Settled,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        assert settings.retry_topic is not None
        self.topic = settings.retry_topic
        self.settings = settings
        self._kafka = kafka
        self._consumer = consumer
        self._on_settled = on_settled
        self.clock = clock
        self.wall = wall
        self.fences = Fences()
        self.policy = settings.park_policy
        self._config = ordered_producer_config(
            producer_config(settings.bootstrap_servers, settings.kafka_config),
            settings.kafka_config,
        )
        self._producer: Producer | None = None
        self.pending = 0  # writes not acknowledged yet
        self._assigned: set[TP] = set()  # source partitions assigned (fences kept for them)
        self._fencing = settings.ordering == "key"  # unordered: nothing to keep in order
        self._lift_at = 0.0

    # -- dispatch -------------------------------------------------------------------------
    def admit(self, runs: list[list[Entry]], ledger: Ledger) -> tuple[list[list[Entry]], Actions]:
        """The runs that may start now; records of the retry topic not yet due wait, and
        records of fenced keys are parked behind (their writes in the Actions)."""
        admitted: list[list[Entry]] = []
        behind: list[list[Entry]] = []
        topic, fences = self.topic, self.fences
        now_wall: float | None = None
        for run in runs:
            first = run[0]
            if first.topic == topic:
                if now_wall is None:
                    now_wall = self.wall()
                for index, entry in enumerate(run):
                    due = due_of(entry.headers)
                    if due > now_wall:
                        ledger.rate_wait(entry, run[index + 1 :], self.clock() + due - now_wall)
                        run = run[:index]
                        break
            elif fences.fenced((first.topic, first.partition), first.key, first.offset):
                behind.append(run)  # a run is one shard: one key of one partition
                continue
            if run:
                admitted.append(run)
        actions = ledger.park_behind(behind) if behind else Actions()
        return admitted, actions

    # -- writes ---------------------------------------------------------------------------
    def send(self, entry: Entry, error: BaseException | None) -> None:
        """Park `entry`: due after the first parked backoff if it failed, at once if it
        goes behind its key's parked records."""
        if self._producer is None:
            with unpinned():  # made on the control thread: its client's threads run anywhere
                self._producer = self._kafka.producer(self._config)
        reason = FAILED if error is not None else BEHIND
        due = self.wall() + (self.policy.delay(1) if error is not None else 0.0)
        parked = parked_record(entry, self.topic, self.settings.group_id, reason, due, error)
        source = (entry.topic, entry.partition)
        key = entry.key
        fences, settled = self.fences, self._on_settled

        def delivered(err: ClientError | None, message: Message) -> None:
            self.pending -= 1
            if err is not None:
                settled(entry, err, None)
                return
            at = (message.partition(), message.offset())
            if self._fencing and source in self._assigned:  # still ours
                fences.written(source, key, entry.offset, *at)
            settled(entry, None, at)

        self.pending += 1
        while True:
            try:
                self._producer.produce(*parked, on_delivery=delivered)  # topic, value, key, headers
                return
            except BufferError:
                self._producer.poll(0.05)
            except ClientError as exc:
                self.pending -= 1
                settled(entry, exc, None)
                return

    def poll(self, timeout: float = 0.0) -> None:
        """Serve the retry topic's acknowledgements."""
        if self._producer is not None and self.pending:
            self._producer.poll(timeout)

    def flush(self, timeout: float) -> None:
        if self._producer is not None and self.pending:
            self._producer.flush(timeout)

    # -- fences ---------------------------------------------------------------------------
    def rebuild(self, tps: Iterable[TP]) -> None:
        """Before records of newly assigned source partitions `tps` are dispatched: their
        fences, from the retry topic's records past the group's committed offsets."""
        sources = [tp for tp in tps if tp[0] != self.topic]
        self._assigned = self._assigned | set(sources)
        if not sources:
            return
        consumer, timeout = self._consumer(), self.settings.connect_timeout
        count = consumer.partition_count(self.topic, timeout)
        if not count:
            raise ClientError(
                f"the partitions of retry topic {self.topic!r} are unknown", "_UNKNOWN_TOPIC"
            )
        partitions = [(self.topic, p) for p in range(count)]
        starts = {
            (o.topic, o.partition): o.offset if o.offset is not None else 0
            for o in consumer.committed(partitions, timeout)
        }
        # A retry topic holding many parked records takes a while to read: more than the
        # time to reach the cluster, and a rebuild that gives up stops the consumer.
        records = consumer.read(starts, max(timeout, REBUILD_TIMEOUT))
        for tp in sources:
            fenced = self.fences.rebuild(tp, records)
            if fenced:
                log.info(
                    "%s[%d]: %d key(s) have parked records on %s; their records wait behind them",
                    tp[0],
                    tp[1],
                    fenced,
                    self.topic,
                )

    def forget(self, tps: Iterable[TP]) -> None:
        """Source partitions no longer ours: their next owner rebuilds their fences."""
        for tp in tps:
            self.fences.forget(tp)
        self._assigned = self._assigned - set(tps)

    def lift(self, now: float) -> None:
        """Lift the fences the retry topic's committed offsets have passed."""
        if now < self._lift_at or not len(self.fences):
            return
        self._lift_at = now + LIFT_EVERY
        partitions = sorted(self.fences.retry_partitions())
        try:
            committed = self._consumer().committed(
                [(self.topic, p) for p in partitions], self.settings.connect_timeout
            )
        except ClientError as exc:
            log.debug("reading the retry topic's committed offsets: %s", exc)
            return
        lifted = self.fences.lift({o.partition: o.offset for o in committed})
        if lifted:
            log.debug("retry topic: %d fence(s) lifted", lifted)
