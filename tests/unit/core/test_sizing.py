"""The sizing arithmetic of `parafka partitions` (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parafka.core.sizing import MODES, Mode, SizingError, Target, plan, plans

# 2,000 records/s x 10 ms = 20 records in flight; x 1.25 headroom = 25 handlers at once.
TARGET = Target(rate=2000, per_record_ms=10)


def test_partition_mode_needs_a_partition_per_record_in_flight() -> None:
    p = plan(TARGET, "partition")
    assert (p.slots, p.partitions, p.instances, p.concurrency) == (25, 25, 2, 16)
    assert p.capacity == pytest.approx(2500)  # 25 partitions x 1000 / 10 ms
    assert p.reachable
    assert "one record at a time" in p.explanation
    assert "x 1.25 headroom = 25 partitions" in p.explanation


def test_key_and_unordered_modes_need_partitions_only_to_spread_instances() -> None:
    for mode in ("key", "unordered"):
        p = plan(TARGET, mode)  # type: ignore[arg-type]
        assert (p.slots, p.partitions, p.instances, p.concurrency) == (25, 2, 2, 16)
        assert p.capacity == pytest.approx(3200)  # 2 x 16 handlers x 1000 / 10 ms
        assert "one partition per instance (2)" in p.explanation


def test_key_mode_without_keys_says_what_it_assumes() -> None:
    assert "assumes at least 25 distinct keys" in plan(TARGET, "key").explanation
    enough = plan(Target(rate=2000, per_record_ms=10, keys=25), "key")
    assert enough.reachable
    assert "25 distinct keys are enough" in enough.explanation


def test_key_mode_with_too_few_keys_is_unreachable_and_says_the_ceiling() -> None:
    p = plan(Target(rate=2000, per_record_ms=10, keys=10), "key")
    assert not p.reachable
    assert p.capacity == pytest.approx(1000)  # 10 keys x 1000 / 10 ms
    assert (p.instances, p.partitions) == (1, 1)  # enough to run all 10 keys at once
    assert "at most 1,000 records/s" in p.explanation
    assert "partition or unordered ordering" in p.explanation


def test_more_concurrency_means_fewer_instances() -> None:
    p = plan(Target(rate=2000, per_record_ms=10, concurrency=64), "partition")
    assert (p.partitions, p.instances) == (25, 1)


def test_an_instance_limit_raises_the_concurrency_per_instance() -> None:
    capped = Target(rate=2000, per_record_ms=10, concurrency=4, instances_max=2)
    for mode in MODES:
        p = plan(capped, mode)
        assert p.instances == 2
        assert p.concurrency == 13  # ceil(25 / 2)
        assert "--concurrency 13" in p.explanation
    assert plan(capped, "partition").partitions == 25


def test_headroom_one_plans_for_the_rate_exactly() -> None:
    p = plan(Target(rate=2000, per_record_ms=10, headroom=1), "partition")
    assert p.partitions == 20


def test_arithmetic_is_exact_on_the_decimals_given() -> None:
    # In binary floats 110,000 x 1.1 / 1000 is 121.00000000000001, whose ceiling is 122.
    assert math.ceil(110_000 * 1.1 / 1000) == 122
    assert Target(rate=110_000, per_record_ms=1.1, headroom=1).slots == 121
    assert Target(rate=1000, per_record_ms=1.1, headroom=1.1).slots == 2  # 1.21


def test_a_tiny_load_still_needs_one_of_everything() -> None:
    for p in plans(Target(rate=0.001, per_record_ms=0.001)):
        assert (p.slots, p.partitions, p.instances) == (1, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate": -1}, "--target-rate"),
        ({"rate": 0}, "--target-rate"),
        ({"rate": math.inf}, "--target-rate"),
        ({"rate": math.nan}, "--target-rate"),
        ({"per_record_ms": 0}, "--per-record-ms"),
        ({"concurrency": 0}, "--concurrency"),
        ({"keys": 0}, "--keys"),
        ({"headroom": 0.9}, "--headroom"),
        ({"instances_max": 0}, "--instances-max"),
    ],
)
def test_bad_inputs_name_the_option(kwargs: dict[str, float], needle: str) -> None:
    values: dict[str, float] = {"rate": 100, "per_record_ms": 10, **kwargs}
    with pytest.raises(SizingError) as err:
        Target(**values)  # type: ignore[arg-type]
    assert needle in str(err.value)


# -- properties ----------------------------------------------------------------------------

rates = st.floats(min_value=0.001, max_value=1e7, allow_nan=False)
times = st.floats(min_value=0.001, max_value=1e5, allow_nan=False)
concurrencies = st.integers(min_value=1, max_value=1000)
keys = st.none() | st.integers(min_value=1, max_value=100_000)
headrooms = st.floats(min_value=1, max_value=4)
limits = st.none() | st.integers(min_value=1, max_value=500)
modes = st.sampled_from(MODES)


@st.composite
def targets(draw: st.DrawFn) -> Target:
    return Target(
        rate=draw(rates),
        per_record_ms=draw(times),
        concurrency=draw(concurrencies),
        keys=draw(keys),
        headroom=draw(headrooms),
        instances_max=draw(limits),
    )


def _with(target: Target, **changes: object) -> Target:
    fields = {
        "rate": target.rate,
        "per_record_ms": target.per_record_ms,
        "concurrency": target.concurrency,
        "keys": target.keys,
        "headroom": target.headroom,
        "instances_max": target.instances_max,
    }
    return Target(**{**fields, **changes})  # type: ignore[arg-type]


@given(targets(), modes, st.floats(min_value=1, max_value=100))
def test_more_rate_never_needs_fewer_partitions_or_instances(
    target: Target, mode: Mode, factor: float
) -> None:
    before = plan(target, mode)
    after = plan(_with(target, rate=min(target.rate * factor, 1e9)), mode)
    assert after.partitions >= before.partitions
    assert after.instances >= before.instances


@given(targets(), modes, st.floats(min_value=1, max_value=100))
def test_slower_records_never_need_fewer_partitions_or_instances(
    target: Target, mode: Mode, factor: float
) -> None:
    before = plan(target, mode)
    after = plan(_with(target, per_record_ms=target.per_record_ms * factor), mode)
    assert after.partitions >= before.partitions
    assert after.instances >= before.instances


@given(targets(), modes)
def test_every_instance_has_a_partition_and_the_limit_holds(target: Target, mode: Mode) -> None:
    p = plan(target, mode)
    assert p.partitions >= p.instances >= 1
    assert p.concurrency >= target.concurrency
    if target.instances_max is not None:
        assert p.instances <= target.instances_max


@given(targets(), modes)
def test_a_reachable_plan_sustains_the_target_with_headroom(target: Target, mode: Mode) -> None:
    p = plan(target, mode)
    if not p.reachable:
        assert mode == "key"
        assert target.keys is not None and target.keys < p.slots
        return
    assert p.instances * p.concurrency >= p.slots
    if mode == "partition":
        assert p.partitions >= p.slots
    assert p.capacity >= target.rate * target.headroom * (1 - 1e-9)


@given(targets(), st.integers(min_value=1, max_value=1000))
def test_more_keys_never_lower_the_key_mode_capacity(target: Target, more: int) -> None:
    few = plan(_with(target, keys=target.keys or 1), "key")
    many = plan(_with(target, keys=(target.keys or 1) + more), "key")
    assert many.capacity >= few.capacity - 1e-6
    assert many.reachable or not few.reachable


@given(targets(), modes, st.integers(min_value=1, max_value=100))
def test_more_concurrency_never_needs_more_instances(target: Target, mode: Mode, more: int) -> None:
    before = plan(target, mode)
    after = plan(_with(target, concurrency=target.concurrency + more), mode)
    assert after.instances <= before.instances
