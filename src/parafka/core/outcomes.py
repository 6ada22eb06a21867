"""How a record's run ended, as the executors report it to the control thread."""

from __future__ import annotations

from parafka.core.record import Produced

# What became of a record that did not simply succeed: its outputs, or its exception.
# Records of a batch share one output list (the same object): they settle together.
Outcome = tuple[list[Produced] | None, BaseException | None]
# A record that was handed over but not executed, because an earlier record of its shard
# failed (a later record of the same key must not overtake the failed one).
NOT_RUN: Outcome = (None, None)
