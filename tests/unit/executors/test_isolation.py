"""Poison isolation in batches: the failing records are found, the rest succeed once."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from parafka.core.record import Record
from parafka.core.scheduler import SHARD_FUNCTIONS
from parafka.executors import NOT_RUN, Work, run_chunk
from parafka.executors.isolation import BatchRun


def batch_of(keys: list[int]) -> list[Record]:
    return [Record("t", 0, offset, b"k%d" % key) for offset, key in enumerate(keys)]


def drive(records: list[Record], poison: set[int], ordering: str) -> tuple[BatchRun, Counter[int]]:
    """Run a BatchRun with a handler that fails any batch holding a poison offset."""
    batch = BatchRun(records, SHARD_FUNCTIONS[ordering])
    batch.start()
    succeeded: Counter[int] = Counter()
    while (members := batch.next_batch()) is not None:
        offsets = [r.offset for r in members]
        assert offsets == sorted(offsets)  # a sub-batch keeps offset order
        if poison & set(offsets):
            batch.failed(ValueError("poison"))
        else:
            succeeded.update(offsets)
            batch.succeeded([("out", b"x", None, None)])
    return batch, succeeded


def test_a_batch_of_100_with_2_poison_records_fails_exactly_those() -> None:
    records = batch_of(list(range(100)))  # 100 keys
    batch, succeeded = drive(records, {17, 80}, "key")
    outcomes = batch.outcomes()
    assert outcomes is not None
    failed = {i for i, o in enumerate(outcomes) if o is not None and o[1] is not None}
    assert failed == {17, 80}
    assert set(succeeded) == set(range(100)) - {17, 80}
    assert set(succeeded.values()) == {1}  # each of the rest succeeded once
    assert batch.calls <= 2 * 2 * 7 + 1  # about 2 log2(n) calls per poison record


@given(
    keys=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    poison_picks=st.sets(st.integers(0, 39), max_size=4),
    ordering=st.sampled_from(["key", "partition", "unordered"]),
)
def test_isolation_finds_the_poison_and_keeps_order_per_shard(
    keys: list[int], poison_picks: set[int], ordering: str
) -> None:
    records = batch_of(keys)
    poison = {p for p in poison_picks if p < len(records)}
    batch, succeeded = drive(records, poison, ordering)
    outcomes = batch.outcomes()
    shard_of = SHARD_FUNCTIONS[ordering]
    blocked_from: dict[object, int] = {}  # shard -> offset of its first poison record
    for offset in sorted(poison):
        if shard_of is not None:
            blocked_from.setdefault(shard_of(records[offset]), offset)
    for offset, record in enumerate(records):
        outcome = None if outcomes is None else outcomes[offset]
        shard = shard_of(record) if shard_of is not None else None
        first_poison = blocked_from.get(shard) if shard is not None else None
        if offset in poison and (first_poison is None or first_poison == offset):
            assert outcome is not None and isinstance(outcome[1], ValueError)
        elif first_poison is not None and offset > first_poison:
            assert outcome == NOT_RUN  # waits behind the failed record of its shard
            assert succeeded[offset] == 0
        else:
            assert succeeded[offset] == 1
            assert outcome is not None and outcome[0] is not None


def test_records_whose_value_failed_to_decode_are_set_aside_before_the_first_call() -> None:
    seen: list[list[int]] = []

    def handle(batch: list[Record]) -> None:
        seen.append([r.offset for r in batch])

    records = [
        Record("t", 0, 0, b"a", b"1"),
        Record("t", 0, 1, b"b", b"x"),
        Record("t", 0, 2, b"a", b"2"),
    ]
    work = Work(handle, batch_size=3, deserializer="json", ordering="key")
    result = run_chunk(handle, records, work, work.decoder())
    assert seen == [[0, 2]]
    assert result.outcomes is not None and result.outcomes[1] is not None
    assert type(result.outcomes[1][1]).__name__ == "DeserializationError"
