"""The in-memory transactional producer, and how a transaction ends.

A transaction's records go to the log as they are delivered, invisible to read_committed
readers until it commits; offsets sent to it reach the group only then. A newer producer
with the same transactional.id fences the older one and aborts its open transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from parafka.core.seam import ClientError, Offset
from parafka.testing.memory.faults import error
from parafka.testing.memory.groups import GroupMetadata
from parafka.testing.memory.log import Transaction, TxnState
from parafka.testing.memory.producer import MemoryProducer, failed_message
from parafka.testing.memory.state import ClusterState


class TxnPhase(Enum):
    UNINITIALISED = "uninitialised"
    READY = "ready"
    IN_TRANSACTION = "in transaction"
    ABORTABLE = "abortable"  # an error happened: only abort_transaction is allowed
    FENCED = "fenced"


class MemoryTransactionalProducer(MemoryProducer):
    """A transactional producer (made by `InMemoryCluster.transactional_producer`)."""

    def __init__(self, state: ClusterState, config: Mapping[str, Any]) -> None:
        super().__init__(state, config, None)
        if not config.get("transactional.id"):
            raise ValueError("a transactional producer needs a 'transactional.id' in its config")
        self.transactional_id = str(config["transactional.id"])
        self.phase = TxnPhase.UNINITIALISED
        self._txn: Transaction | None = None
        self._offsets: dict[str, list[Offset]] = {}
        self._abort_reason: ClientError | None = None

    # -- the seam ------------------------------------------------------------------------
    def init_transactions(self, timeout: float) -> None:
        state = self._state
        with state.lock:
            self._usable()
            if self.phase is not TxnPhase.UNINITIALISED:
                raise self._wrong_phase("init_transactions")
            tid = self.transactional_id
            older = state.transactional.get(tid)
            if isinstance(older, MemoryTransactionalProducer) and older is not self:
                older.phase = TxnPhase.FENCED
            abort_open_transaction(state, tid)
            state.transactional[tid] = self
            self.phase = TxnPhase.READY

    def begin_transaction(self) -> None:
        with self._state.lock:
            self._usable()
            if self.phase is not TxnPhase.READY:
                raise self._wrong_phase("begin_transaction")
            self._txn = Transaction(self.transactional_id)
            self._state.open_transactions[self.transactional_id] = self._txn
            self._offsets = {}
            self._abort_reason = None
            self.phase = TxnPhase.IN_TRANSACTION

    def send_offsets_to_transaction(
        self, offsets: Sequence[Offset], group_metadata: object, timeout: float
    ) -> None:
        state = self._state
        with state.lock:
            self._usable()
            if self.phase is not TxnPhase.IN_TRANSACTION:
                raise self._wrong_phase("send_offsets_to_transaction")
            if not isinstance(group_metadata, GroupMetadata):
                raise ClientError(
                    "group_metadata must come from an in-memory consumer", "INVALID_ARG"
                )
            group = state.groups.get(group_metadata.group_id)
            standalone = group_metadata.member_id == "" and not (group and group.members)
            if not standalone and (group is None or not group.is_live(group_metadata.member_id)):
                raise self._needs_abort(
                    error(
                        "UNKNOWN_MEMBER_ID",
                        f"member {group_metadata.member_id!r} is not in group "
                        f"{group_metadata.group_id!r} any more: its offsets cannot commit",
                        txn_requires_abort=True,
                    )
                )
            for offset in offsets:
                problem = state.check_offset(offset)
                if problem is not None:
                    raise self._needs_abort(
                        error(problem.code, problem.reason, txn_requires_abort=True)
                    )
            self._offsets.setdefault(group_metadata.group_id, []).extend(offsets)

    def commit_transaction(self, timeout: float) -> None:
        state = self._state
        with state.lock:
            self._usable()
            if self.phase is TxnPhase.ABORTABLE and self._abort_reason is not None:
                raise self._abort_reason
            if self.phase is not TxnPhase.IN_TRANSACTION:
                raise self._wrong_phase("commit_transaction")
            code = state.faults.take_transaction_commit_fault()
            if code is not None:
                raise self._needs_abort(
                    error(
                        code,
                        "commit_transaction failed (faults.fail_transaction_commits)",
                        txn_requires_abort=True,
                    )
                )
        self._report(self._deliver())
        if self._in_flight and state.idle(timeout):
            self._report(self._deliver())
        with state.lock:
            if self.phase is not TxnPhase.IN_TRANSACTION:  # a delivery failed, or fenced
                raise self._abort_reason or self._wrong_phase("commit_transaction")
            if self._in_flight:
                raise error(
                    "_TIMED_OUT",
                    f"commit_transaction: {len(self._in_flight)} records not delivered yet "
                    "(advance the clock, then commit again)",
                )
            for group_id, offsets in self._offsets.items():
                state.commit(group_id, offsets, None)
            self._end(TxnState.COMMITTED)

    def abort_transaction(self, timeout: float) -> None:
        state = self._state
        with state.lock:
            self._usable()
            if self.phase not in (TxnPhase.IN_TRANSACTION, TxnPhase.ABORTABLE):
                raise self._wrong_phase("abort_transaction")
            purged = [i for i in self._in_flight if i.txn is self._txn]
            self._in_flight = [i for i in self._in_flight if i.txn is not self._txn]
            self._end(TxnState.ABORTED)
        failure = error("_PURGE_QUEUE", "purged: its transaction was aborted")
        self._report([(failure, item, failed_message(item)) for item in purged])

    # -- inside --------------------------------------------------------------------------
    def _usable(self) -> None:
        super()._usable()
        if self.phase is TxnPhase.FENCED:
            raise ClientError(
                f"producer with transactional.id {self.transactional_id!r} was fenced by a "
                "newer one with the same id: make a new producer",
                "PRODUCER_FENCED",
                fatal=True,
            )

    def _transaction_for_produce(self) -> Transaction | None:
        if self.phase is not TxnPhase.IN_TRANSACTION or self._txn is None:
            raise self._wrong_phase("produce")
        return self._txn

    def _delivery_failed(self, failure: ClientError) -> None:
        if self.phase is TxnPhase.IN_TRANSACTION:
            self._needs_abort(error(failure.code, failure.reason, txn_requires_abort=True))

    def _needs_abort(self, reason: ClientError) -> ClientError:
        self.phase = TxnPhase.ABORTABLE
        self._abort_reason = reason
        return reason

    def _wrong_phase(self, call: str) -> ClientError:
        return ClientError(
            f"{call}() is not allowed while the producer is {self.phase.value}", "_STATE"
        )

    def _end(self, outcome: TxnState) -> None:
        if self._txn is not None:
            end_transaction(self._state, self._txn, outcome)
        self._txn = None
        self._offsets = {}
        self._abort_reason = None
        self.phase = TxnPhase.READY


def end_transaction(state: ClusterState, txn: Transaction, outcome: TxnState) -> None:
    """Settle `txn`: markers in every partition it wrote to, its LSO hold released."""
    txn.state = outcome
    for tp in sorted(txn.partitions):
        state.log(tp).end_transaction(txn, state.now_ms())
    if state.open_transactions.get(txn.transactional_id) is txn:
        del state.open_transactions[txn.transactional_id]


def abort_open_transaction(state: ClusterState, transactional_id: str) -> bool:
    """Abort the open transaction of `transactional_id`, if any (True if there was one)."""
    txn = state.open_transactions.get(transactional_id)
    if txn is None:
        return False
    end_transaction(state, txn, TxnState.ABORTED)
    return True
