"""Injected faults: failures a test arms explicitly, each used up in a fixed order.

Nothing here is random: a fault fires on the next matching operation (or on every one a
predicate picks), so a failing run repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from parafka.core.seam import TP, ClientError

DeliveryPredicate = Callable[[str, bytes | None, bytes | None], bool]

# Error names the client reports as retriable (a subset: the ones a test is likely to use).
_RETRIABLE = frozenset(
    {
        "REQUEST_TIMED_OUT",
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "COORDINATOR_LOAD_IN_PROGRESS",
        "NOT_ENOUGH_REPLICAS",
        "LEADER_NOT_AVAILABLE",
        "NOT_LEADER_FOR_PARTITION",
        "_TRANSPORT",
        "_TIMED_OUT",
        "_MSG_TIMED_OUT",
    }
)


def error(code: str, reason: str, *, txn_requires_abort: bool = False) -> ClientError:
    """A ClientError named `code`, retriable when the real client would say so."""
    return ClientError(
        f"{reason} ({code})",
        code,
        retriable=code in _RETRIABLE,
        txn_requires_abort=txn_requires_abort,
    )


@dataclass(frozen=True)
class CommitFault:
    """One armed commit failure: the whole request, or only `partitions` of it."""

    code: str
    partitions: frozenset[TP] | None
    raises: bool

    def hits(self, tp: TP) -> bool:
        return self.partitions is None or tp in self.partitions


class Faults:
    """The failures armed on an `InMemoryCluster` (its `faults` attribute)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Disarm everything (delays and reachability too)."""
        self._commits: list[CommitFault] = []
        self._deliveries: list[str] = []
        self._delivery_rules: list[tuple[DeliveryPredicate, str]] = []
        self._txn_commits: list[str] = []
        self.delivery_delay = 0.0
        self.unreachable = False

    # -- arming --------------------------------------------------------------------------
    def fail_commits(
        self,
        count: int = 1,
        code: str = "REQUEST_TIMED_OUT",
        partitions: Collection[TP] | None = None,
        raises: bool = False,
    ) -> None:
        """Fail the next `count` commit requests (offset commits, not transactions) with
        `code`: every partition, or only `partitions`. With `raises`, a failed request
        raises ClientError instead of reporting to on_commit (a request never sent)."""
        chosen = None if partitions is None else frozenset(partitions)
        self._commits.extend(CommitFault(code, chosen, raises) for _ in range(count))

    def fail_deliveries(self, count: int = 1, code: str = "_MSG_TIMED_OUT") -> None:
        """Fail the next `count` record deliveries (in delivery order) with `code`."""
        self._deliveries.extend([code] * count)

    def fail_deliveries_where(
        self, predicate: DeliveryPredicate, code: str = "_MSG_TIMED_OUT"
    ) -> None:
        """Fail every delivery whose (topic, key, value) `predicate` accepts, until clear()."""
        self._delivery_rules.append((predicate, code))

    def delay_deliveries(self, seconds: float) -> None:
        """Records produced from now on are delivered `seconds` of virtual time later."""
        if seconds < 0:
            raise ValueError(f"a delivery delay cannot be negative, got {seconds}")
        self.delivery_delay = seconds

    def set_unreachable(self, unreachable: bool = True) -> None:
        """While set, `topics()` and `committed()` raise ClientError (_TRANSPORT)."""
        self.unreachable = unreachable

    def fail_transaction_commits(self, count: int = 1, code: str = "INVALID_TXN_STATE") -> None:
        """The next `count` commit_transaction calls fail with a txn_requires_abort error."""
        self._txn_commits.extend([code] * count)

    # -- firing (used by the cluster) ----------------------------------------------------
    def take_commit_fault(self) -> CommitFault | None:
        return self._commits.pop(0) if self._commits else None

    def delivery_error(self, topic: str, key: bytes | None, value: bytes | None) -> str | None:
        """The code a delivery of this record fails with, or None."""
        if self._deliveries:
            return self._deliveries.pop(0)
        for predicate, code in self._delivery_rules:
            if predicate(topic, key, value):
                return code
        return None

    def take_transaction_commit_fault(self) -> str | None:
        return self._txn_commits.pop(0) if self._txn_commits else None

    def check_reachable(self, what: str) -> None:
        if self.unreachable:
            raise error("_TRANSPORT", f"{what}: the cluster is unreachable (faults.unreachable)")
