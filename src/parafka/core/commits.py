"""What to commit for each partition: offset, metadata, and throttling. Pure.

The metadata lists offsets finished above the committed one (see codec.py). When that
list does not fit in the broker's metadata limit, the plain offset is committed and the
partition is throttled until it fits again: no record above its highest finished offset
starts, while the records below it (the holes in the set) keep running. That bounds the
re-processing a crash could cause without stalling the partition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from parafka.core.codec import MetadataTooLarge, encode_completed
from parafka.core.offsets import PartitionOffsets
from parafka.core.seam import TP

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommitPlan:
    offsets: list[tuple[str, int, int, str]]  # topic, partition, offset, metadata
    throttle: dict[TP, int] = field(default_factory=dict)  # partition -> highest to start
    unthrottle: list[TP] = field(default_factory=list)


class CommitPlanner:
    """Builds commit plans and remembers which partitions are throttled."""

    def __init__(self, max_metadata_bytes: int) -> None:
        self.max_metadata_bytes = max_metadata_bytes
        self.throttled: set[TP] = set()
        self.metadata_bytes: dict[TP, int] = {}  # the last planned commit's metadata size

    def plan(
        self, partitions: Mapping[TP, PartitionOffsets], only: Iterable[TP] | None = None
    ) -> CommitPlan:
        """Offsets for every partition that changed since its last commit; marks them
        committed (call `PartitionOffsets.mark_dirty` if the commit then fails)."""
        wanted = None if only is None else set(only)
        plan = CommitPlan([])
        for tp, state in partitions.items():
            if (wanted is not None and tp not in wanted) or not state.needs_commit():
                continue
            position = state.position
            assert position is not None
            metadata = self._metadata(tp, state, position, plan)
            self.metadata_bytes[tp] = len(metadata)
            plan.offsets.append((tp[0], tp[1], position, metadata))
            state.mark_committed(position)
        return plan

    def _metadata(self, tp: TP, state: PartitionOffsets, position: int, plan: CommitPlan) -> str:
        done = state.done_above
        text = ""
        if done and self.max_metadata_bytes:
            try:
                text = encode_completed(position, done, self.max_metadata_bytes)
            except MetadataTooLarge as exc:
                if tp not in self.throttled:
                    log.warning(
                        "%s[%d]: %d finished offsets above %d need %d bytes of commit "
                        "metadata, over the %d-byte limit; committing the plain offset and "
                        "starting nothing above offset %d of this partition until it fits",
                        tp[0], tp[1], len(done), position, exc.size, exc.limit, max(done),
                    )  # fmt: skip
                    self.throttled.add(tp)
                # Stop extending the set, keep filling its holes: nothing above the
                # highest finished offset starts until the metadata fits again.
                plan.throttle[tp] = max(done)
                return ""
        if tp in self.throttled:
            self.throttled.discard(tp)
            plan.unthrottle.append(tp)
            log.info("%s[%d]: commit metadata fits again; full speed", tp[0], tp[1])
        return text

    def forget(self, tp: TP) -> None:
        self.throttled.discard(tp)
        self.metadata_bytes.pop(tp, None)
