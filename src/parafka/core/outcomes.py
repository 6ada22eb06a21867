"""How a record's run ended, as the executors report it to the control thread."""

from __future__ import annotations

from typing import Any, NamedTuple

from parafka.core.record import Produced

# What became of a record that did not simply succeed: its outputs, or its exception.
# Records of a batch share one output list (the same object): they settle together.
Outcome = tuple[list[Produced] | None, BaseException | None]
# A record that was handed over but not executed, because an earlier record of its shard
# failed (a later record of the same key must not overtake the failed one). Compare it by
# value (`== NOT_RUN`), never by identity: compiled modules (setup.py) hold a plain tuple
# unboxed and box it anew, so its identity does not survive them. No other outcome equals
# it (a record done with no output is None; a failed one carries its exception).
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


def one_output_each(lists: list[list[Produced]]) -> OneEach | None:
    """Records' outputs lists as OneEach when each holds exactly one output and no two are
    the same list (a batch's, shared by its records), else None."""
    if len(set(map(id, lists))) != len(lists):
        return None
    outputs = OneEach(output for outputs in lists for output in outputs)
    return outputs if len(outputs) == len(lists) else None


def as_one_each(outcomes: list[Outcome | None] | OneEach | None) -> OneEach | None:
    """A chunk's outcomes as OneEach when each record returned exactly one output of its
    own (none failed, none shares a batch's list), else None."""
    if isinstance(outcomes, OneEach):
        return outcomes
    if not outcomes or any(o is None or o[1] is not None or not o[0] for o in outcomes):
        return None  # done with no output, not run, or failed
    return one_output_each([o[0] for o in outcomes if o is not None and o[0] is not None])


def per_record_outcomes(
    outcomes: list[Outcome | None] | OneEach | None,
) -> list[Outcome | None] | None:
    """A chunk's outcomes one per record, whatever their form (None stays None: each
    record done with no output)."""
    if isinstance(outcomes, OneEach):
        return [([output], None) for output in outcomes]
    return outcomes
