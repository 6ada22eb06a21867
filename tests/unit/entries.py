"""Test helpers: records wrapped into engine entries, and fetched messages."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from parafka.core.entry import Entry
from parafka.core.ledger import Part
from parafka.core.offsets import PartitionOffsets
from parafka.core.record import Record
from parafka.core.scheduler import SHARD_KEYS
from parafka.core.seam import TP
from parafka.testing.memory import MemoryMessage


class Parts:
    """One `Part` (assignment) per partition, made on first use."""

    def __init__(self) -> None:
        self.parts: dict[TP, Part] = {}

    def __call__(self, tp: TP) -> Part:
        part = self.parts.get(tp)
        if part is None:
            part = self.parts[tp] = Part(tp, len(self.parts) + 1, PartitionOffsets())
        return part


def wrap(
    records: Iterable[Record], ordering: str = "key", parts: Parts | None = None
) -> list[Entry]:
    """Entries for `records`, with a Part per partition and the shard key of `ordering`."""
    parts = parts if parts is not None else Parts()
    shard_of: Callable[[Record], Hashable] | None = SHARD_KEYS[ordering]
    entries = []
    for r in records:
        message = MemoryMessage(
            r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp or 0
        )
        entry = Entry(message, r.topic, r.partition, r.offset, parts((r.topic, r.partition)))
        entry.attempt = r.attempt
        if shard_of is not None:
            entry.shard = shard_of(entry)
        entries.append(entry)
    return entries


def wrap_runs(runs: Iterable[Iterable[Record]], ordering: str = "key") -> list[list[Entry]]:
    """Runs of entries for runs of records (one Part per partition across all runs)."""
    parts = Parts()
    return [wrap(run, ordering, parts) for run in runs]


def message(topic: str, partition: int, offset: int, key: bytes | None = None) -> MemoryMessage:
    """A fetched message, as the Kafka seam hands it over (the in-memory cluster's)."""
    return MemoryMessage(topic, partition, offset, key, None, None, 0)
