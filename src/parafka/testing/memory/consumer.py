"""An in-memory group member behind `seam.Consumer`.

Everything a member is owed (rebalance callbacks, asynchronous commit outcomes, errors)
is delivered inside its own consume() (or close()), on the calling thread, never from
another member's call. A member whose session expired hears `on_lost` there, then joins
the group again by itself, as librdkafka does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from parafka.core.seam import TP, ClientError, CommitResult, ConsumerEvents, Message, Offset
from parafka.testing.memory.assignors import strategy_of
from parafka.testing.memory.faults import error
from parafka.testing.memory.groups import Event, GroupMetadata, Member
from parafka.testing.memory.log import READ_COMMITTED, READ_UNCOMMITTED, MemoryMessage
from parafka.testing.memory.state import ClusterState

DEFAULT_MAX_POLL_INTERVAL_MS = 300_000  # librdkafka's max.poll.interval.ms


class Status(Enum):
    NEW = "new"  # not subscribed yet
    MEMBER = "member"
    CLOSED = "closed"
    CRASHED = "crashed"


class MemoryConsumer:
    """A consumer of an `InMemoryCluster` (made by `InMemoryCluster.consumer`)."""

    def __init__(
        self, state: ClusterState, config: Mapping[str, Any], events: ConsumerEvents
    ) -> None:
        if not config.get("group.id"):
            raise ValueError("an in-memory consumer needs a 'group.id' in its config")
        self._state = state
        self._events = events
        self.group_id = str(config["group.id"])
        self._strategy = strategy_of(config.get("partition.assignment.strategy"))
        self._isolation = str(config.get("isolation.level", READ_COMMITTED))
        if self._isolation not in (READ_COMMITTED, READ_UNCOMMITTED):
            raise ValueError(f"isolation.level {self._isolation!r} is not a Kafka isolation level")
        self._reset = str(config.get("auto.offset.reset", "earliest"))
        self._max_poll = int(config.get("max.poll.interval.ms", DEFAULT_MAX_POLL_INTERVAL_MS))
        self.status = Status.NEW
        self.member: Member | None = None
        self._topics: tuple[str, ...] = ()
        self._positions: dict[TP, int | None] = {}  # assigned partitions (None: not fetched)
        self._paused: set[TP] = set()
        self._seen: dict[TP, tuple[int, int]] = {}
        self._owed: list[Event] = []  # commit outcomes and errors not yet delivered
        self._last_poll = state.clock.now()
        self._turn = 0

    # -- what the cluster and tests may ask ----------------------------------------------
    @property
    def assignment(self) -> list[TP]:
        """The partitions this member fetches (as far as its callbacks told it)."""
        return sorted(self._positions)

    def position(self, tp: TP) -> int | None:
        return self._positions.get(tp)

    def crash(self) -> None:
        """Die at once: no callbacks, nothing delivered; the group moves on."""
        with self._state.lock:
            self._leave()
            self.status = Status.CRASHED

    def expire(self, reason: ClientError | None = None) -> None:
        """The session timed out: the group reassigns what this member held; it hears
        on_lost in its next consume() (after `reason` through on_error, if given)."""
        with self._state.lock:
            member = self.member
            if self.status is not Status.MEMBER or member is None or not member.in_group:
                return
            self._state.group(self.group_id).leave(member)
            member.events = [Event("lost")]
            if reason is not None:
                self._owed.append(Event("error", error=reason))

    def expire_if_overdue(self, now: float) -> None:
        if self.status is Status.MEMBER and (now - self._last_poll) * 1000 > self._max_poll:
            self.expire(
                error(
                    "_MAX_POLL_EXCEEDED",
                    f"no consume() for {now - self._last_poll:g} s, over "
                    f"max.poll.interval.ms={self._max_poll}: left the group",
                )
            )

    # -- the seam ------------------------------------------------------------------------
    def topics(self, timeout: float) -> set[str]:
        with self._state.lock:
            self._state.faults.check_reachable("topics()")
            return set(self._state.topics)

    def subscribe(self, topics: Sequence[str]) -> None:
        with self._state.lock:
            self._alive()
            self._topics = tuple(sorted(set(topics)))
            if self.member is not None and self.member.in_group:
                self.member.topics = self._topics
                self._state.group(self.group_id).changed()
            else:
                self._join()

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        self._begin_poll()
        records = self._serve_then_fetch(max_records)
        if not records and self._state.idle(timeout):
            self._begin_poll()
            records = self._serve_then_fetch(max_records)
        return list(records)

    def commit(self, offsets: Sequence[Offset], asynchronous: bool) -> None:
        state = self._state
        with state.lock:
            state.expire_overdue()
            if self.status in (Status.CLOSED, Status.CRASHED) or (
                self.member is not None and not self.member.in_group
            ):
                problem = error("UNKNOWN_MEMBER_ID", "this consumer is not in the group")
                results = [CommitResult(o, problem) for o in offsets]
            else:
                fault = state.faults.take_commit_fault()
                if fault is not None and fault.raises:
                    raise error(fault.code, "commit request failed (faults.fail_commits)")
                results = state.commit(self.group_id, offsets, fault)
            if asynchronous:
                self._owed.append(Event("commit", results=tuple(results)))
                return
        self._events.on_commit(results)

    def committed(self, partitions: Sequence[TP], timeout: float) -> list[Offset]:
        with self._state.lock:
            self._alive()
            self._state.faults.check_reachable("committed()")
            return [self._state.committed_offset(self.group_id, tp) for tp in partitions]

    def pause(self, partitions: Iterable[TP]) -> None:
        with self._state.lock:
            self._paused.update(tp for tp in partitions if tp in self._positions)

    def resume(self, partitions: Iterable[TP]) -> None:
        with self._state.lock:
            self._paused.difference_update(partitions)

    def read(self, starts: Mapping[TP, int], timeout: float) -> list[Message]:
        with self._state.lock:
            self._alive()
            self._state.faults.check_reachable("read()")
            found: list[Message] = []
            for tp, start in starts.items():
                log = self._state.log(tp)
                found.extend(log.read(max(0, start), self._isolation, len(log.entries))[0])
            return found

    def seek(self, tp: TP, offset: int) -> None:
        with self._state.lock:
            self._alive()
            if tp not in self._positions:
                raise ClientError(
                    f"cannot seek {tp}: it is not assigned to this consumer", "_STATE"
                )
            if offset < 0:
                raise ClientError(f"cannot seek {tp} to offset {offset}", "INVALID_ARG")
            self._positions[tp] = offset

    def watermarks(self, tp: TP) -> tuple[int, int] | None:
        with self._state.lock:
            return self._seen.get(tp)

    def partition_count(self, topic: str, timeout: float) -> int | None:
        with self._state.lock:
            logs = self._state.topics.get(topic)
            return len(logs) if logs is not None else None

    def group_metadata(self) -> object:
        member_id = "" if self.member is None else self.member.member_id
        return GroupMetadata(self.group_id, member_id)

    def close(self) -> None:
        """Deliver what is owed (but no new assignment), revoke what is held, leave."""
        if self.status in (Status.CLOSED, Status.CRASHED):
            return
        self._serve(closing=True)
        held = self.assignment
        if held and self.member is not None and self.member.in_group:
            self._events.on_revoke(held)
        with self._state.lock:
            self._leave()
            self.status = Status.CLOSED

    # -- inside --------------------------------------------------------------------------
    def _alive(self) -> None:
        if self.status in (Status.CLOSED, Status.CRASHED):
            raise RuntimeError(f"this in-memory consumer is {self.status.value}")

    def _join(self) -> None:
        state = self._state
        member = Member(state.next_id("member"), self._topics)
        state.group(self.group_id).join(member, self._strategy)
        self.member = member
        self.status = Status.MEMBER
        self._last_poll = state.clock.now()
        if self not in state.consumers:
            state.consumers.append(self)

    def _leave(self) -> None:
        if self.member is not None:
            self._state.group(self.group_id).leave(self.member)
            self.member.events.clear()
        self._positions.clear()
        self._paused.clear()
        self._owed.clear()
        if self in self._state.consumers:
            self._state.consumers.remove(self)

    def _begin_poll(self) -> None:
        with self._state.lock:
            self._alive()
            self._state.expire_overdue()
            self._last_poll = self._state.clock.now()

    def _serve_then_fetch(self, max_records: int) -> list[MemoryMessage]:
        self._serve(closing=False)
        with self._state.lock:
            return self._fetch(max_records)

    def _next_event(self, closing: bool) -> Event | None:
        with self._state.lock:
            if self._owed:
                return self._owed.pop(0)
            member = self.member
            while member is not None and member.events:
                event = member.events.pop(0)
                if event.kind == "assign":
                    if closing:
                        continue  # never heard of: freed when the member leaves
                    for tp in event.partitions:
                        self._positions[tp] = None
                if event.kind == "lost":
                    event = Event("lost", tuple(self.assignment))
                return event
            return None

    def _serve(self, closing: bool) -> None:
        """Run every callback owed, in order, with the cluster unlocked."""
        while (event := self._next_event(closing)) is not None:
            partitions = list(event.partitions)
            if event.kind == "commit":
                self._events.on_commit(list(event.results))
            elif event.kind == "error" and event.error is not None:
                self._events.on_error(event.error)
            elif event.kind == "assign":
                self._events.on_assign(partitions)
            elif event.kind == "revoke":
                self._events.on_revoke(partitions)
                with self._state.lock:
                    self._drop(partitions)
                    if self.member is not None:
                        self._state.group(self.group_id).revoked(self.member, event.partitions)
            elif event.kind == "lost":
                if partitions:
                    self._events.on_lost(partitions)
                with self._state.lock:
                    self._drop(partitions)
                    if not closing and self.status is Status.MEMBER:
                        self._join()  # librdkafka rejoins by itself

    def _drop(self, partitions: Iterable[TP]) -> None:
        for tp in partitions:
            self._positions.pop(tp, None)
            self._paused.discard(tp)
            self._seen.pop(tp, None)

    def _fetch(self, max_records: int) -> list[MemoryMessage]:
        """Records from the unpaused assigned partitions, starting one further on each call
        so that a busy partition cannot starve the others."""
        ready = [tp for tp in sorted(self._positions) if tp not in self._paused]
        if not ready or max_records <= 0:
            return []
        start = self._turn % len(ready)
        self._turn += 1
        found: list[MemoryMessage] = []
        for tp in ready[start:] + ready[:start]:
            if len(found) >= max_records:
                break
            log = self._state.log(tp)
            position = self._positions[tp]
            if position is None:
                position = self._state.committed_offset(self.group_id, tp).offset
            if position is None or position > log.high_watermark:
                position = (
                    0
                    if self._reset in ("earliest", "smallest", "beginning")
                    else (log.end(self._isolation))
                )
            records, self._positions[tp] = log.read(
                position, self._isolation, max_records - len(found)
            )
            self._seen[tp] = (0, log.high_watermark)
            found.extend(records)
        return found
