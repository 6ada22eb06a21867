"""Exactly-once: outputs and offsets in one Kafka transaction.

Two parts. `OrderedRelease` (pure) holds each finished record's outputs until every
older record of its partition is finished too, so a transaction only ever carries the
outputs of records below the offsets it commits: a restart from those offsets repeats
nothing that was committed and misses nothing, with no need for commit metadata (which
some brokers drop). `Transaction` (I/O) produces the released outputs and commits them
with the offsets, once per commit interval, in one short burst.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from parafka.logs import client_logger
from parafka.offsets import PartitionOffsets
from parafka.record import Produced, Record

log = logging.getLogger("parafka")

TP = tuple[str, int]


class _Held:
    """Outputs that belong to some records (one record, or the records of a batch)."""

    __slots__ = ("by_partition", "outputs", "records")

    def __init__(self, records: list[Record], outputs: list[Produced]) -> None:
        self.records, self.outputs = records, outputs
        self.by_partition: dict[TP, list[int]] = {}
        for record in records:
            self.by_partition.setdefault((record.topic, record.partition), []).append(record.offset)
        for offsets in self.by_partition.values():
            offsets.sort()


class OrderedRelease:
    """Finished records with outputs, held until they are the oldest unfinished records
    of their partitions. Pure: the caller owns the PartitionOffsets."""

    def __init__(self) -> None:
        self._held: dict[TP, dict[int, _Held]] = {}
        self.released: list[Produced] = []  # outputs for the next transaction

    def hold(self, records: list[Record], outputs: list[Produced]) -> set[TP]:
        """Hold `outputs` of finished `records`; returns their partitions."""
        held = _Held(records, outputs)
        for record in records:
            self._held.setdefault((record.topic, record.partition), {})[record.offset] = held
        return set(held.by_partition)

    def release(self, partitions: Mapping[TP, PartitionOffsets], changed: Iterable[TP]) -> int:
        """Move every held group now at the head of its partitions to `released` and mark
        its records finished. Returns how many records were released."""
        work, count = list(changed), 0
        while work:
            tp = work.pop()
            held, state = self._held.get(tp), partitions.get(tp)
            if not held or state is None:
                continue
            head = state.position
            group = held.get(head) if head is not None else None
            if group is None or not all(
                (p in partitions and partitions[p].starts_with(offsets))
                for p, offsets in group.by_partition.items()
            ):
                continue
            self.released.extend(group.outputs)
            for p, offsets in group.by_partition.items():
                for offset in offsets:
                    del self._held[p][offset]
                    partitions[p].finish(offset)
                work.append(p)
            count += len(group.records)
        return count

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        """Drop what is held for `tps` (all partitions when None), and the released
        outputs, which are no longer valid once any partition rewinds."""
        if tps is None:
            self._held.clear()
        else:
            for tp in tps:
                self._held.pop(tp, None)
        self.released = []

    @property
    def held(self) -> int:
        return sum(len(h) for h in self._held.values())


class TransactionAborted(Exception):
    """The transaction was aborted: its outputs and offsets did not happen."""


class Transaction:
    """A transactional producer: `commit()` produces the released outputs and commits
    them with the consumer's offsets, atomically."""

    def __init__(self, config: Mapping[str, Any], timeout: float) -> None:
        config = dict(config)
        config.setdefault("transactional.id", f"parafka-{uuid.uuid4().hex}")
        self.transactional_id = str(config["transactional.id"])
        self._timeout = timeout
        self._producer = Producer(config, logger=client_logger())
        self.commits = 0

    def start(self) -> None:
        """Register the transactional id (fencing any earlier producer with it)."""
        self._producer.init_transactions(self._timeout)

    def commit(
        self, outputs: list[Produced], offsets: list[TopicPartition], group_metadata: Any
    ) -> None:
        """One transaction: `outputs`, then `offsets` for the consumer group. Raises
        TransactionAborted when it had to be aborted, KafkaException when fatal."""
        producer = self._producer
        try:
            producer.begin_transaction()
            for out in outputs:
                while True:
                    try:
                        producer.produce(out.topic, out.value, out.key, headers=out.headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
            if offsets:
                producer.send_offsets_to_transaction(offsets, group_metadata, self._timeout)
            self._commit()
        except KafkaException as exc:
            self._abort_or_raise(exc)
        self.commits += 1

    def _commit(self) -> None:
        while True:
            try:
                self._producer.commit_transaction(self._timeout)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or error.txn_requires_abort():
                    raise
                log.warning("transaction commit: %s; retrying", error.str())

    def _abort_or_raise(self, exc: KafkaException) -> None:
        error: KafkaError = exc.args[0]
        if error.fatal() or not error.txn_requires_abort():
            raise exc
        log.warning("transaction aborted: %s", error.str())
        try:
            self._producer.abort_transaction(self._timeout)
        except KafkaException as again:
            raise again from exc
        raise TransactionAborted(error.str()) from exc

    def close(self) -> None:
        self._producer.flush(self._timeout)
