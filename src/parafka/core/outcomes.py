"""How a record's run ended, as the executors report it to the control thread."""

from __future__ import annotations

from typing import Any, NamedTuple

from parafka.core.record import Produced

# What became of a record that did not simply succeed: its outputs, or its exception.
# Records of a batch share one output list (the same object): they settle together.
Outcome = tuple[list[Produced] | None, BaseException | None]
# A record that was handed over but not executed, because an earlier record of its shard
# failed (a later record of the same key must not overtake the failed one).
NOT_RUN: Outcome = (None, None)


class Paired(NamedTuple):
    """Records of one chunk that each returned exactly one output: `outputs[i]` is
    `records[i]`'s, and each record settles with its own output. One item to hand over
    and produce instead of a pair of lists per record (the per-record handler's common
    case). It unpacks as (records, outputs) like the pairs whose outputs belong to all
    their records; `type(item) is Paired` tells them apart."""

    records: list[Any]
    outputs: list[Produced]
