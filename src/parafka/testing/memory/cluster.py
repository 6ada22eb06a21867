"""`InMemoryCluster`: a Kafka cluster in one Python object, behind `seam.Kafka`.

Clients made here behave like confluent-kafka's as the seam describes them, with no
threads, no sockets and no real time: a `VirtualClock` drives delivery delays and
timeouts, and faults are armed explicitly on `cluster.faults`. Tests also get a direct
API: create topics, produce, read a partition's log, read committed offsets, crash or
expire a member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parafka.core.seam import TP, ConsumerEvents, FailedCallback, Headers, Offset
from parafka.testing.memory.clock import VirtualClock
from parafka.testing.memory.consumer import MemoryConsumer
from parafka.testing.memory.faults import Faults
from parafka.testing.memory.log import READ_COMMITTED, MemoryMessage, PartitionLog, key_partition
from parafka.testing.memory.producer import MemoryProducer
from parafka.testing.memory.state import ClusterState, IdleHook
from parafka.testing.memory.transactions import MemoryTransactionalProducer, abort_open_transaction

DEFAULT_OFFSET_METADATA_MAX_BYTES = 4096  # the broker's offset.metadata.max.bytes


class InMemoryCluster:
    """Topics, consumer groups, transactions and faults, all in memory.

    `on_idle(timeout)`, if given, is called when a client would wait (a consume() that
    found nothing, a flush() with records not yet due); a test driver may advance the
    clock there. Without it nothing ever waits.
    """

    def __init__(
        self,
        clock: VirtualClock | None = None,
        *,
        offset_metadata_max_bytes: int = DEFAULT_OFFSET_METADATA_MAX_BYTES,
        on_idle: IdleHook | None = None,
    ) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self._state = ClusterState(self.clock, offset_metadata_max_bytes, on_idle)
        self._partition_turns: dict[str, int] = {}

    @property
    def faults(self) -> Faults:
        return self._state.faults

    # -- seam.Kafka ----------------------------------------------------------------------
    def consumer(self, config: Mapping[str, Any], events: ConsumerEvents) -> MemoryConsumer:
        return MemoryConsumer(self._state, config, events)

    def producer(
        self, config: Mapping[str, Any], on_failed: FailedCallback | None = None
    ) -> MemoryProducer:
        return MemoryProducer(self._state, config, on_failed)

    def transactional_producer(self, config: Mapping[str, Any]) -> MemoryTransactionalProducer:
        return MemoryTransactionalProducer(self._state, config)

    # -- topics and records --------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1) -> None:
        """A new topic of `partitions` empty partitions; groups subscribed to it rebalance."""
        if partitions < 1:
            raise ValueError(f"a topic needs at least 1 partition, got {partitions}")
        with self._state.lock:
            if name in self._state.topics:
                raise ValueError(f"topic {name!r} already exists")
            self._state.topics[name] = [PartitionLog(name, p) for p in range(partitions)]
            for group_id in sorted(self._state.groups):
                group = self._state.groups[group_id]
                if any(name in m.topics for m in group.members.values()):
                    group.changed()

    def topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        with self._state.lock:
            return {name: len(logs) for name, logs in sorted(self._state.topics.items())}

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> MemoryMessage:
        """Append one record now (no producer, no faults) and return it. Keyed records go
        to crc32(key) % partitions; unkeyed ones round-robin per topic."""
        state = self._state
        with state.lock:
            count = state.partition_count(topic)
            if count == 0:
                raise ValueError(f"no topic {topic!r}; create_topic() it first")
            if partition is None:
                if key is not None:
                    partition = key_partition(key, count)
                else:
                    turn = self._partition_turns.get(topic, 0)
                    self._partition_turns[topic] = turn + 1
                    partition = turn % count
            return state.log((topic, partition)).append(key, value, headers, state.now_ms())

    def messages(
        self, topic: str, partition: int, isolation: str = READ_COMMITTED
    ) -> list[MemoryMessage]:
        """The records of one partition a reader at `isolation` would see (read_committed:
        committed transactions only, and nothing from the first open transaction on)."""
        with self._state.lock:
            return self._state.log((topic, partition)).messages(isolation)

    def end_offset(self, tp: TP) -> int:
        """The high watermark of `tp`: one past its last entry (control markers count)."""
        with self._state.lock:
            return self._state.log(tp).high_watermark

    def last_stable_offset(self, tp: TP) -> int:
        """Where read_committed readers of `tp` stop: the first open transaction's record."""
        with self._state.lock:
            return self._state.log(tp).last_stable_offset

    # -- groups --------------------------------------------------------------------------
    def committed(self, group: str, topic: str, partition: int) -> Offset:
        """The group's committed offset and metadata (offset None: nothing committed)."""
        with self._state.lock:
            return self._state.committed_offset(group, (topic, partition))

    def assignment(self, group: str) -> dict[str, list[TP]]:
        """Member id -> the partitions the coordinator gave it (callbacks may be pending)."""
        with self._state.lock:
            found = self._state.groups.get(group)
            if found is None:
                return {}
            return {m: sorted(found.members[m].holding) for m in sorted(found.members)}

    def crash(self, client: MemoryConsumer | MemoryProducer) -> None:
        """Kill a client as kill -9 would: a consumer leaves its group with no callbacks
        (the others get its partitions); a producer's undelivered records are lost, and
        its open transaction stays open until a new producer with its transactional.id
        calls init_transactions (or `abort_open_transactions()`)."""
        client.crash()

    def expire(self, consumer: MemoryConsumer) -> None:
        """The member's session times out: its partitions go to the others now; it hears
        on_lost in its next consume() and then joins again by itself."""
        consumer.expire()

    def abort_open_transactions(self) -> list[str]:
        """Abort every open transaction (as the coordinator does after
        transaction.timeout.ms); the transactional ids whose transaction was aborted."""
        with self._state.lock:
            return [
                tid
                for tid in sorted(self._state.open_transactions)
                if abort_open_transaction(self._state, tid)
            ]
