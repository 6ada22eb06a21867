"""How many partitions and instances a target rate needs, per ordering mode (pure).

The model follows how parafka runs records (Little's law: records in flight = rate x time):

- `partition`: a partition runs one record at a time, so the partitions must cover every
  record in flight; an instance runs up to `concurrency` partitions at once.
- `key`: records of different keys run at once, up to `concurrency` per instance and up to
  the number of distinct keys in flight; partitions are only needed to spread instances.
- `unordered`: anything runs at once, up to `concurrency` per instance.

In every mode a partition is read by one instance, so partitions >= instances. Arithmetic is
exact (fractions of the decimal inputs) so that, e.g., 0.1 x 30 never rounds up to 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from parafka.core.errors import wire_name
from parafka.core.options import default
from parafka.core.scheduler import ORDERINGS, Ordering

Mode = Ordering
MODES: tuple[Mode, ...] = ORDERINGS
DEFAULT_CONCURRENCY: int = default("concurrency")  # parafka run's default
DEFAULT_HEADROOM = 1.25


@wire_name("parafka.sizing.SizingError")
class SizingError(ValueError):
    """An input of the sizing is out of range; the message names it and the fix."""


@dataclass(frozen=True)
class Target:
    """What the deployment must sustain, and how it will run."""

    rate: float  # records per second
    per_record_ms: float  # mean handler time of one record
    concurrency: int = DEFAULT_CONCURRENCY  # handlers at once per instance
    keys: int | None = None  # distinct keys in flight (key mode); None: plenty
    headroom: float = DEFAULT_HEADROOM  # plan for rate x headroom
    instances_max: int | None = None  # at most this many instances

    def __post_init__(self) -> None:
        _positive_number("target rate", "--target-rate", self.rate)
        _positive_number("time per record", "--per-record-ms", self.per_record_ms)
        _positive_number("headroom", "--headroom", self.headroom)
        if self.headroom < 1:
            raise SizingError(
                f"headroom {self.headroom} is below 1: use 1 (no spare capacity) or more, "
                "e.g. --headroom 1.25"
            )
        _whole("concurrency", "--concurrency", self.concurrency)
        if self.keys is not None:
            _whole("distinct keys", "--keys", self.keys)
        if self.instances_max is not None:
            _whole("instances limit", "--instances-max", self.instances_max)

    @property
    def in_flight(self) -> Fraction:
        """Records being processed at any moment at the target rate (no headroom)."""
        return _exact(self.rate) * _exact(self.per_record_ms) / 1000

    @property
    def slots(self) -> int:
        """Handlers that must run at once to sustain rate x headroom."""
        return max(1, math.ceil(self.in_flight * _exact(self.headroom)))

    def capacity(self, parallel: int) -> float:
        """Records per second that `parallel` handlers running at once sustain."""
        return float(parallel * 1000 / _exact(self.per_record_ms))


@dataclass(frozen=True)
class Plan:
    """The answer for one ordering mode."""

    ordering: Mode
    partitions: int
    instances: int
    concurrency: int  # per instance; above the target's when instances_max forced it
    slots: int  # handlers needed at once, with headroom
    capacity: float  # records/s the plan sustains at most
    reachable: bool  # False: the mode cannot sustain the target (too few keys)
    explanation: str  # the arithmetic, in one sentence


def plan(target: Target, ordering: Mode) -> Plan:
    """Partitions and instances that sustain `target` with `ordering`."""
    if ordering == "partition":
        return _partition_plan(target)
    if ordering == "key":
        return _key_plan(target)
    if ordering == "unordered":
        return _unordered_plan(target)
    raise SizingError(f"unknown ordering {ordering!r}: use one of {', '.join(MODES)}")


def plans(target: Target, orderings: tuple[Mode, ...] = MODES) -> list[Plan]:
    return [plan(target, ordering) for ordering in orderings]


def _spread(target: Target, parallel: int) -> tuple[int, int, str]:
    """Instances and concurrency per instance to run `parallel` handlers at once, and a
    clause that says so."""
    instances = math.ceil(parallel / target.concurrency)
    concurrency = target.concurrency
    if target.instances_max is not None and instances > target.instances_max:
        instances = target.instances_max
        concurrency = math.ceil(parallel / instances)
        return (
            instances,
            concurrency,
            f"with at most {_n(instances)} {_plural(instances, 'instance')} that needs "
            f"--concurrency {_n(concurrency)}",
        )
    return (
        instances,
        concurrency,
        f"at concurrency {_n(concurrency)} that is {_n(instances)} "
        f"{_plural(instances, 'instance')}",
    )


def _need(target: Target, unit: str) -> str:
    """'2,000/s x 10 ms = 20 records in flight, x 1.25 headroom = 25 partitions'"""
    return (
        f"{_n(target.rate)}/s x {_n(target.per_record_ms)} ms = "
        f"{_plural_of(target.in_flight, 'record')} in flight, x {_n(target.headroom)} headroom "
        f"= {_n(target.slots)} {_plural(target.slots, unit)}"
    )


def _partition_plan(target: Target) -> Plan:
    slots = target.slots
    instances, concurrency, spread = _spread(target, slots)
    partitions = max(slots, instances)
    return Plan(
        ordering="partition",
        partitions=partitions,
        instances=instances,
        concurrency=concurrency,
        slots=slots,
        capacity=target.capacity(partitions),
        reachable=True,
        explanation=(
            f"A partition runs one record at a time, so {_need(target, 'partition')}; "
            f"{spread}, each running up to {_n(concurrency)} partitions at once."
        ),
    )


def _key_plan(target: Target) -> Plan:
    slots = target.slots
    keys = target.keys
    reachable = keys is None or keys >= slots
    parallel = slots if reachable else keys
    assert parallel is not None
    instances, concurrency, spread = _spread(target, parallel)
    partitions = instances
    running = instances * concurrency if keys is None else min(instances * concurrency, keys)
    if keys is None:
        keys_note = (
            f" (assumes at least {_n(slots)} distinct {_plural(slots, 'key')} in flight; "
            "--keys checks it)"
        )
    elif reachable:
        keys_note = f" ({_n(keys)} distinct keys are enough)"
    else:
        keys_note = ""
    if reachable:
        explanation = (
            f"Records of different keys run at once, so {_need(target, 'handler')}; {spread}, "
            f"and one partition per instance ({_n(partitions)}) spreads them{keys_note}."
        )
    else:
        explanation = (
            f"Only {_n(parallel)} distinct keys can run at once, so at most "
            f"{_n(target.capacity(parallel))} records/s ({_n(parallel)} x 1000 / "
            f"{_n(target.per_record_ms)} ms), short of the {_n(slots)} handlers the target "
            f"needs with headroom ({_n(target.rate)}/s x {_n(target.per_record_ms)} ms x "
            f"{_n(target.headroom)}); use partition or unordered ordering, or more distinct keys."
        )
    return Plan(
        ordering="key",
        partitions=partitions,
        instances=instances,
        concurrency=concurrency,
        slots=slots,
        capacity=target.capacity(running),
        reachable=reachable,
        explanation=explanation,
    )


def _unordered_plan(target: Target) -> Plan:
    slots = target.slots
    instances, concurrency, spread = _spread(target, slots)
    return Plan(
        ordering="unordered",
        partitions=instances,
        instances=instances,
        concurrency=concurrency,
        slots=slots,
        capacity=target.capacity(instances * concurrency),
        reachable=True,
        explanation=(
            f"Any records run at once, so {_need(target, 'handler')}; {spread}, and one "
            f"partition per instance ({_n(instances)}) spreads them."
        ),
    )


def _exact(value: float) -> Fraction:
    """The decimal the user typed (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(float(value)))


def _n(value: float | Fraction | int) -> str:
    """A number for a sentence: thousands separators, at most two decimals."""
    number = float(value)
    if number == int(number):
        return f"{int(number):,}"
    if abs(number) < 1:
        small = f"{number:.2g}"
        return small if "e" not in small else f"{number:.10f}".rstrip("0")
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _plural_of(count: Fraction, word: str) -> str:
    """'1 record', '0.5 records', '20 records'"""
    return f"{_n(count)} {_plural(1 if count == 1 else 2, word)}"


def _positive_number(what: str, option: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise SizingError(f"{what} {value!r} is invalid: give {option} a number above 0")


def _whole(what: str, option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SizingError(f"{what} {value!r} is invalid: give {option} a whole number >= 1")
