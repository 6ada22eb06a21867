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
from typing import TYPE_CHECKING, Any

from parafka.core.errors import wire_name
from parafka.core.offsets import PartitionOffsets
from parafka.core.record import Produced
from parafka.core.seam import TP, ClientError, Kafka, Offset

if TYPE_CHECKING:
    from parafka.core.entry import Entry

log = logging.getLogger(__name__)


class _Held:
    """Outputs that belong to some entries (one record, or the records of a batch)."""

    __slots__ = ("by_partition", "entries", "outputs")

    def __init__(self, entries: list[Entry], outputs: list[Produced]) -> None:
        self.entries, self.outputs = entries, outputs
        self.by_partition: dict[TP, list[int]] = {}
        for entry in entries:
            self.by_partition.setdefault(entry.part.tp, []).append(entry.offset)
        for offsets in self.by_partition.values():
            offsets.sort()


class OrderedRelease:
    """Finished entries with outputs, held until they are the oldest unfinished records
    of their partitions. Pure: the caller owns the PartitionOffsets."""

    def __init__(self) -> None:
        self._held: dict[TP, dict[int, _Held]] = {}
        self.released: list[Produced] = []  # outputs for the next transaction

    def hold(self, entries: list[Entry], outputs: list[Produced]) -> set[TP]:
        """Hold `outputs` of finished `entries`; returns their partitions."""
        held = _Held(entries, outputs)
        for entry in entries:
            self._held.setdefault(entry.part.tp, {})[entry.offset] = held
        return set(held.by_partition)

    def release(
        self, partitions: Mapping[TP, PartitionOffsets], changed: Iterable[TP]
    ) -> list[Entry]:
        """Move every held group now at the head of its partitions to `released` and mark
        its records finished. Returns the entries released."""
        work, released = list(changed), []
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
            released.extend(group.entries)
        return released

    def forget(self, tps: Iterable[TP] | None = None) -> list[Entry]:
        """Drop what is held for `tps` (all partitions when None), and the released
        outputs, which are no longer valid once any partition rewinds. Returns the
        entries dropped."""
        dropped: dict[int, _Held] = {}
        for tp in list(self._held) if tps is None else tps:
            for group in self._held.pop(tp, {}).values():
                dropped[id(group)] = group
        for group in dropped.values():  # a batch's group may span partitions
            for p in group.by_partition:
                held = self._held.get(p)
                if held is not None:
                    for offset in group.by_partition[p]:
                        held.pop(offset, None)
        self.released = []
        return [entry for group in dropped.values() for entry in group.entries]

    @property
    def held(self) -> int:
        return sum(len(h) for h in self._held.values())


@wire_name("parafka.exactly_once.TransactionAborted")
class TransactionAborted(Exception):
    """The transaction was aborted: its outputs and offsets did not happen."""


class Transaction:
    """A transactional producer. Outputs go into the open transaction as they are released
    (`send`), or all at once when it commits; `commit()` sends the rest and commits them
    with the consumer's offsets, atomically."""

    def __init__(self, kafka: Kafka, config: Mapping[str, Any], timeout: float) -> None:
        config = dict(config)
        config.setdefault("transactional.id", f"parafka-{uuid.uuid4().hex}")
        self.transactional_id = str(config["transactional.id"])
        self._timeout = timeout
        self._producer = kafka.transactional_producer(config)
        self.commits = 0
        self.open = False  # a transaction has begun and holds outputs not committed yet

    def start(self) -> None:
        """Register the transactional id (fencing any earlier producer with it)."""
        self._producer.init_transactions(self._timeout)

    def send(self, outputs: list[Produced]) -> None:
        """Produce `outputs` into the open transaction (begun if none is). Raises
        TransactionAborted when it had to be aborted, ClientError when fatal."""
        try:
            self._produce(outputs)
        except ClientError as exc:
            self._abort_or_raise(exc)

    def _produce(self, outputs: list[Produced]) -> None:
        producer = self._producer
        if not self.open:
            producer.begin_transaction()
            self.open = True
        for topic, value, key, headers in outputs:
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)

    def commit(
        self, outputs: list[Produced], offsets: list[Offset], group_metadata: object
    ) -> None:
        """Commit the open transaction with `outputs` (besides those sent already) and
        `offsets` for the consumer group. Raises TransactionAborted when it had to be
        aborted, ClientError when fatal."""
        producer = self._producer
        try:
            self._produce(outputs)
            if offsets:
                producer.send_offsets_to_transaction(offsets, group_metadata, self._timeout)
            self._commit()
            self.open = False
        except ClientError as exc:
            self._abort_or_raise(exc)
        self.commits += 1

    def abort(self) -> None:
        """Abort the open transaction, if one is: its outputs never become visible."""
        if self.open:
            self.open = False
            self._producer.abort_transaction(self._timeout)

    def _commit(self) -> None:
        while True:
            try:
                self._producer.commit_transaction(self._timeout)
                return
            except ClientError as error:
                if not error.retriable or error.txn_requires_abort:
                    raise
                log.warning("transaction commit: %s; retrying", error)

    def _abort_or_raise(self, error: ClientError) -> None:
        if error.fatal or not error.txn_requires_abort:
            self.open = False
            raise error
        log.warning("transaction aborted: %s", error)
        self.open = False
        try:
            self._producer.abort_transaction(self._timeout)
        except ClientError as again:
            raise again from error
        raise TransactionAborted(str(error)) from error

    def close(self) -> None:
        """Abort what is not committed (a hard stop), deliver the rest."""
        try:
            self.abort()
        except ClientError as exc:
            log.warning("aborting the open transaction at close: %s", exc)
        self._producer.flush(self._timeout)
