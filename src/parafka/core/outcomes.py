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


class OneEach(list[Produced]):
    """A chunk's outcomes when each of its records returned exactly one output of its own
    and none failed: `self[i]` is record i's output. The per-record handler's common case,
    reported without an Outcome and a list per record (None stands for "each returned
    nothing" the same way)."""

    __slots__ = ()


def as_one_each(outcomes: list[Outcome | None] | OneEach | None) -> OneEach | None:
    """A chunk's outcomes as OneEach when each record returned exactly one output of its
    own (none failed, none shares a batch's list), else None."""
    if isinstance(outcomes, OneEach):
        return outcomes
    if not outcomes:
        return None
    outputs, lists = OneEach(), set()
    for outcome in outcomes:
        if outcome is None or outcome[1] is not None or not outcome[0] or len(outcome[0]) != 1:
            return None  # done with no output, not run, failed, or several outputs
        if id(outcome[0]) in lists:
            return None  # a batch's list, shared by its records
        lists.add(id(outcome[0]))
        outputs.append(outcome[0][0])
    return outputs


def per_record_outcomes(
    outcomes: list[Outcome | None] | OneEach | None,
) -> list[Outcome | None] | None:
    """A chunk's outcomes one per record, whatever their form (None stays None: each
    record done with no output)."""
    if isinstance(outcomes, OneEach):
        return [([output], None) for output in outcomes]
    return outcomes
