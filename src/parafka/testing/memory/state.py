"""The cluster's shared state: logs, groups, committed offsets, transactions.

One object that the clients of a cluster share, behind one re-entrant lock, so that the
real engine's threads may use an in-memory cluster too. Callbacks into user code are
always made with the lock released (the callers see to that).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from parafka.core.seam import TP, ClientError, CommitResult, Offset
from parafka.testing.memory.clock import VirtualClock
from parafka.testing.memory.faults import CommitFault, Faults, error
from parafka.testing.memory.groups import Group
from parafka.testing.memory.log import PartitionLog, Transaction

IdleHook = Callable[[float], object]


class Expirable(Protocol):
    """A consumer the cluster may throw out of its group for polling too rarely."""

    def expire_if_overdue(self, now: float) -> None: ...


class ClusterState:
    """Everything the brokers of an in-memory cluster would hold."""

    def __init__(
        self, clock: VirtualClock, offset_metadata_max_bytes: int, on_idle: IdleHook | None
    ) -> None:
        self.clock = clock
        self.faults = Faults()
        self.lock = threading.RLock()
        self.on_idle = on_idle
        self.offset_metadata_max_bytes = offset_metadata_max_bytes
        self.topics: dict[str, list[PartitionLog]] = {}
        self.groups: dict[str, Group] = {}
        self.committed: dict[str, dict[TP, Offset]] = {}
        self.consumers: list[Expirable] = []
        self.transactional: dict[str, object] = {}  # transactional.id -> its live producer
        self.open_transactions: dict[str, Transaction] = {}  # transactional.id -> open txn
        self._ids = itertools.count(1)

    # -- topics --------------------------------------------------------------------------
    def partition_count(self, topic: str) -> int:
        return len(self.topics.get(topic, ()))

    def log(self, tp: TP) -> PartitionLog:
        logs = self.topics.get(tp[0])
        if logs is None or not 0 <= tp[1] < len(logs):
            raise ClientError(f"no partition {tp[1]} of topic {tp[0]!r}", "UNKNOWN_TOPIC_OR_PART")
        return logs[tp[1]]

    def now_ms(self) -> int:
        return self.clock.millis()

    # -- groups --------------------------------------------------------------------------
    def group(self, group_id: str) -> Group:
        if group_id not in self.groups:
            self.groups[group_id] = Group(group_id, self.partition_count)
        return self.groups[group_id]

    def next_id(self, prefix: str) -> str:
        """A fresh id that sorts after every earlier one (join order)."""
        return f"{prefix}-{next(self._ids):06d}"

    def committed_offset(self, group_id: str, tp: TP) -> Offset:
        found = self.committed.get(group_id, {}).get(tp)
        return found if found is not None else Offset(tp[0], tp[1], None, "")

    def check_offset(self, offset: Offset) -> ClientError | None:
        """Why the broker would refuse to store `offset`, or None."""
        tp = (offset.topic, offset.partition)
        if not 0 <= tp[1] < self.partition_count(tp[0]):
            return error("UNKNOWN_TOPIC_OR_PART", f"cannot commit {tp}: no such partition")
        if offset.offset is None or offset.offset < 0:
            return error("INVALID_COMMIT_OFFSET", f"cannot commit offset {offset.offset} of {tp}")
        size = len(offset.metadata.encode())
        if size > self.offset_metadata_max_bytes:
            return error(
                "OFFSET_METADATA_TOO_LARGE",
                f"commit metadata of {tp} is {size} bytes, over the broker's "
                f"offset.metadata.max.bytes of {self.offset_metadata_max_bytes}",
            )
        return None

    def commit(
        self, group_id: str, offsets: Sequence[Offset], fault: CommitFault | None
    ) -> list[CommitResult]:
        """Store each acceptable offset; the outcome per partition."""
        results: list[CommitResult] = []
        stored = self.committed.setdefault(group_id, {})
        for offset in offsets:
            tp = (offset.topic, offset.partition)
            problem = self.check_offset(offset)
            if problem is None and fault is not None and fault.hits(tp):
                problem = error(fault.code, f"commit of {tp} failed (faults.fail_commits)")
            if problem is None:
                stored[tp] = offset
            results.append(CommitResult(offset, problem))
        return results

    def expire_overdue(self) -> None:
        now = self.clock.now()
        for consumer in list(self.consumers):
            consumer.expire_if_overdue(now)

    def idle(self, timeout: float) -> bool:
        """Let the test's idle hook run (it may advance the clock); False without one."""
        if self.on_idle is None or timeout <= 0:
            return False
        self.on_idle(timeout)
        return True
