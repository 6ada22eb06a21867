"""Consumer groups: membership, rebalances, and the callbacks each member is owed.

The coordinator decides at once; a member learns of a decision only from the events
queued for it, which its own next consume() delivers. Ownership follows the real
protocols' rule that a partition is never handed to a new member before its old owner has
revoked it:

- eager (range, roundrobin): on a membership change every member is told to revoke all it
  holds; once every member has done so (inside its consume()), the new assignment is
  computed and every member is told its whole new set (possibly empty).
- cooperative-sticky: only partitions that move are revoked from their owner; once it has
  revoked them, a second round assigns them to their new owner. Members keeping
  partitions hear nothing about them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from parafka.core.seam import TP, ClientError, CommitResult
from parafka.testing.memory.assignors import (
    COOPERATIVE,
    assign_range,
    assign_roundrobin,
    assign_sticky,
)

EventKind = Literal["assign", "revoke", "lost", "commit", "error"]


@dataclass(frozen=True)
class Event:
    """A callback owed to a member: partitions for assign/revoke/lost (lost: all it has),
    results for commit, an error for error."""

    kind: EventKind
    partitions: tuple[TP, ...] = ()
    results: tuple[CommitResult, ...] = ()
    error: ClientError | None = None


@dataclass(frozen=True)
class GroupMetadata:
    """What `Consumer.group_metadata()` returns: enough to check a transactional offset
    commit comes from a live member of the group."""

    group_id: str
    member_id: str


@dataclass(eq=False)
class Member:
    """The coordinator's record of one member."""

    member_id: str
    topics: tuple[str, ...]
    events: list[Event] = field(default_factory=list)
    holding: set[TP] = field(default_factory=set)  # granted to it (the event may be pending)
    revoking: set[TP] = field(default_factory=set)  # asked back, not yet revoked
    synced: bool = False  # has been sent its assignment of the current round
    revokes_owed: int = 0  # revoke events queued for it and not yet run
    in_group: bool = True


class Group:
    """One consumer group: its live members, strategy and ownership."""

    def __init__(self, group_id: str, partitions: Callable[[str], int]) -> None:
        self.group_id = group_id
        self._partitions = partitions  # topic -> partition count (0: no such topic)
        self.members: dict[str, Member] = {}
        self.strategy: str | None = None
        self._changed = False  # membership or topics changed since the last eager round

    # -- membership ----------------------------------------------------------------------
    def join(self, member: Member, strategy: str) -> None:
        if self.strategy is not None and self.members and strategy != self.strategy:
            raise ClientError(
                f"group {self.group_id!r} uses {self.strategy!r}; a member asking for "
                f"{strategy!r} cannot join (give every member the same "
                "partition.assignment.strategy)",
                "INCONSISTENT_GROUP_PROTOCOL",
                fatal=True,
            )
        self.strategy = strategy
        self.members[member.member_id] = member
        self.changed()

    def leave(self, member: Member) -> None:
        """`member` is gone (closed, crashed or expired): free what it held, rebalance."""
        if self.members.pop(member.member_id, None) is None:
            return
        member.in_group = False
        member.holding.clear()
        member.revoking.clear()
        self.changed()

    def revoked(self, member: Member, partitions: tuple[TP, ...]) -> None:
        """`member` has run its on_revoke for `partitions`: they are free now."""
        member.holding.difference_update(partitions)
        member.revoking.difference_update(partitions)
        member.revokes_owed = max(0, member.revokes_owed - 1)
        if member.in_group:
            self.rebalance()

    def is_live(self, member_id: str) -> bool:
        return member_id in self.members

    # -- rebalancing ---------------------------------------------------------------------
    @property
    def cooperative(self) -> bool:
        return self.strategy in COOPERATIVE

    def changed(self) -> None:
        """Membership or subscribed topics changed: start a rebalance."""
        self._changed = True
        self.rebalance()

    def rebalance(self) -> None:
        """Move the group one step towards the assignment its strategy wants."""
        if not self.members:
            return
        if self.cooperative:
            self._cooperative_step()
        else:
            self._eager_step()

    def _counts(self) -> dict[str, int]:
        topics = {t for m in self.members.values() for t in m.topics}
        return {t: n for t in sorted(topics) if (n := self._partitions(t)) > 0}

    def _subscriptions(self) -> dict[str, tuple[str, ...]]:
        return {m.member_id: m.topics for m in self.members.values()}

    def _eager_step(self) -> None:
        members = [self.members[i] for i in sorted(self.members)]
        if self._changed:  # phase one: everyone who was assigned gives everything back
            self._changed = False
            for member in members:
                if member.synced:
                    member.synced = False
                    self._ask_back(member, sorted(member.holding))
        if any(m.revokes_owed for m in members):
            return  # the join barrier: someone has not revoked yet
        if all(m.synced for m in members):
            return
        strategy = assign_roundrobin if self.strategy == "roundrobin" else assign_range
        target = strategy(self._subscriptions(), self._counts())
        for member in members:  # phase two: everyone hears its whole new set
            member.holding = set(target[member.member_id])
            member.synced = True
            member.events.append(Event("assign", tuple(target[member.member_id])))

    def _ask_back(self, member: Member, partitions: list[TP]) -> None:
        member.revoking.update(partitions)
        member.revokes_owed += 1
        member.events.append(Event("revoke", tuple(partitions)))

    def _cooperative_step(self) -> None:
        members = [self.members[i] for i in sorted(self.members)]
        keep = {m.member_id: sorted(m.holding - m.revoking) for m in members}
        target = assign_sticky(self._subscriptions(), self._counts(), keep)
        held = {tp for m in members for tp in m.holding}
        for member in members:
            wanted = set(target[member.member_id])
            away = sorted(member.holding - member.revoking - wanted)
            if away:
                self._ask_back(member, away)
            granted = sorted(tp for tp in wanted if tp not in held)
            if granted or not member.synced:
                member.holding.update(granted)
                member.synced = True
                member.events.append(Event("assign", tuple(granted)))
