"""`RecordingEvents`: a `seam.ConsumerEvents` that writes down every callback.

For tests that drive a consumer by hand: what was assigned, revoked, lost, committed,
in the order it was reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parafka.core.seam import TP, ClientError, CommitResult

Callback = tuple[str, object]


@dataclass
class RecordingEvents:
    """Keeps each callback as (name, argument) in `calls`, and the current assignment."""

    calls: list[Callback] = field(default_factory=list)
    assigned: set[TP] = field(default_factory=set)

    def on_assign(self, partitions: list[TP]) -> None:
        self.calls.append(("assign", sorted(partitions)))
        self.assigned.update(partitions)

    def on_revoke(self, partitions: list[TP]) -> None:
        self.calls.append(("revoke", sorted(partitions)))
        self.assigned.difference_update(partitions)

    def on_lost(self, partitions: list[TP]) -> None:
        self.calls.append(("lost", sorted(partitions)))
        self.assigned.difference_update(partitions)

    def on_commit(self, results: list[CommitResult]) -> None:
        self.calls.append(("commit", list(results)))

    def on_error(self, error: ClientError) -> None:
        self.calls.append(("error", error))

    def named(self, name: str) -> list[object]:
        """The arguments of every callback called `name` ("assign", "commit", ...)."""
        return [argument for called, argument in self.calls if called == name]

    def commits(self) -> list[CommitResult]:
        """Every commit outcome reported, in order."""
        return [r for batch in self.named("commit") for r in batch]  # type: ignore[attr-defined]

    def clear(self) -> None:
        self.calls.clear()
