"""The commit-metadata codec: round trips, the size cap, and text it must refuse quietly."""

from __future__ import annotations

import base64
import pickle
import random
import zlib
from collections.abc import Iterable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from parafka.core.codec import (
    DEFAULT_MAX_METADATA_BYTES,
    MAX_COMPLETED_OFFSETS,
    METADATA_PREFIX,
    MetadataTooLarge,
    decode_completed,
    encode_completed,
)

UNLIMITED = 10**9  # a max_bytes no test set reaches

bases = st.one_of(st.just(0), st.integers(0, 10**6), st.integers(2**40, 2**62))


@st.composite
def base_and_completed(draw: st.DrawFn) -> tuple[int, set[int]]:
    """A base offset and a set above it: runs of any length split by gaps of any size."""
    base = draw(bases)
    gaps = st.one_of(st.integers(0, 3), st.integers(0, 1_000), st.integers(0, 10**12))
    lengths = st.one_of(st.integers(1, 3), st.integers(1, 500))
    completed: set[int] = set()
    next_offset = base + 1
    for gap, length in draw(st.lists(st.tuples(gaps, lengths), min_size=1, max_size=30)):
        start = next_offset + gap
        completed.update(range(start, start + length))
        next_offset = start + length
    return base, completed


@st.composite
def base_and_scattered(draw: st.DrawFn) -> tuple[int, set[int]]:
    """A base offset and a set of offsets scattered anywhere in the next 2**20 above it."""
    base = draw(bases)
    above = draw(st.sets(st.integers(1, 2**20), min_size=1, max_size=200))
    return base, {base + delta for delta in above}


any_completed = st.one_of(base_and_completed(), base_and_scattered())


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _metadata(tag: str, payload: bytes) -> str:
    return METADATA_PREFIX + tag + base64.b64encode(payload).decode("ascii")


# Round trips


@given(any_completed)
@example((0, {10**12}))
@example((0, {1}))
@example((0, set(range(1, 10_001))))
@example((2**62, {2**62 + 1, 2**62 + 10**12}))
@example((2**63 - 3, {2**63 - 1}))
def test_round_trip(case: tuple[int, set[int]]) -> None:
    base, completed = case
    text = encode_completed(base, completed, max_bytes=UNLIMITED)
    assert text.startswith(METADATA_PREFIX)
    assert text.isascii()
    assert decode_completed(base, text) == completed


@given(any_completed)
def test_output_never_exceeds_the_default_limit(case: tuple[int, set[int]]) -> None:
    base, completed = case
    try:
        text = encode_completed(base, completed)
    except MetadataTooLarge as error:
        assert error.size > error.limit == DEFAULT_MAX_METADATA_BYTES
        return
    assert len(text.encode("utf-8")) <= DEFAULT_MAX_METADATA_BYTES
    assert decode_completed(base, text) == completed


@given(any_completed, st.integers(0, 400))
@example((1_000, set(range(1_002, 3_001, 2))), 0)  # compression not even tried for 0 bytes
def test_output_never_exceeds_max_bytes(case: tuple[int, set[int]], max_bytes: int) -> None:
    base, completed = case
    try:
        text = encode_completed(base, completed, max_bytes=max_bytes)
    except MetadataTooLarge as error:
        assert error.unit == "bytes"
        assert error.size > error.limit == max_bytes
        # The error is honest: with room for the size it named, the set fits.
        assert len(encode_completed(base, completed, max_bytes=error.size)) <= error.size
        return
    assert len(text.encode("utf-8")) <= max_bytes
    assert decode_completed(base, text) == completed


def test_any_iterable_in_any_order_with_duplicates_encodes_the_same() -> None:
    offsets = [105, 101, 103, 101, 250, 104]
    expected = encode_completed(100, sorted(set(offsets)))
    assert encode_completed(100, reversed(offsets)) == expected
    assert encode_completed(100, iter(offsets)) == expected
    assert decode_completed(100, expected) == {101, 103, 104, 105, 250}


@pytest.mark.parametrize("empty", [[], set(), frozenset(), iter(()), range(0)])
def test_empty_set_needs_no_metadata(empty: Iterable[int]) -> None:
    assert encode_completed(7, empty) == ""
    assert encode_completed(7, empty, max_bytes=0) == ""


# The format itself: these strings may sit in a broker, written by an older parafka.


def test_runs_format_is_stable() -> None:
    # base 100, one offset, one run: 200 is 99 past base + 1, a run of length 1.
    text = _metadata("r", bytes([100, 1, 99, 0]))
    assert encode_completed(100, {200}) == text
    assert decode_completed(100, text) == {200}


def test_bitset_format_is_stable() -> None:
    # base 0, offsets 1 and 3: bits 0 and 2 of the bitset.
    text = _metadata("b", bytes([0, 2, 0b101]))
    assert encode_completed(0, {1, 3}) == text
    assert decode_completed(0, text) == {1, 3}


def test_compressed_forms_decode() -> None:
    runs = bytes([100, 3, 0, 2])  # 101, 102, 103
    bitset = bytes([100, 3, 0b1101])  # 101, 103, 104
    assert decode_completed(100, _metadata("R", zlib.compress(runs))) == {101, 102, 103}
    assert decode_completed(100, _metadata("B", zlib.compress(bitset))) == {101, 103, 104}


def test_multi_byte_varints_decode() -> None:
    # base 300 and a gap of 1000 both need two varint bytes.
    text = _metadata("r", _varint(300) + _varint(2) + _varint(1000) + _varint(1))
    assert decode_completed(300, text) == {1301, 1302}


# The smaller encoding is picked


def test_dense_run_takes_a_few_dozen_bytes() -> None:
    assert len(encode_completed(1_000, range(1_001, 11_001))) <= 40
    # The usual shape: one slow offset at 1_000, everything after it done.
    assert len(encode_completed(999, range(1_001, 11_001))) <= 40


def test_alternating_offsets_compress() -> None:
    text = encode_completed(1_000, range(1_002, 11_001, 2))
    assert len(text) <= 64
    assert decode_completed(1_000, text) == set(range(1_002, 11_001, 2))


def test_sparse_offsets_across_a_billion_fit() -> None:
    completed = random.Random(50).sample(range(1, 10**9), 50)
    text = encode_completed(0, completed)  # a bitset would take 125 MB
    assert len(text) < 512
    assert decode_completed(0, text) == set(completed)


def test_random_half_density_uses_about_one_bit_per_offset() -> None:
    rng = random.Random(8_000)
    completed = {offset for offset in range(1, 8_001) if rng.random() < 0.5}
    text = encode_completed(0, completed)
    # 8_000 bits are 1_000 bytes, 1_340 in base64; runs would take about 1_800.
    assert len(text) <= 1_400
    assert decode_completed(0, text) == completed


def test_huge_gap_is_cheap() -> None:
    text = encode_completed(0, {10**12, 10**12 + 1})
    assert len(text) <= 32
    assert decode_completed(0, text) == {10**12, 10**12 + 1}


# Limits


def test_set_that_cannot_fit_raises() -> None:
    completed = random.Random(3).sample(range(1, 10**12), 3_000)
    with pytest.raises(MetadataTooLarge) as raised:
        encode_completed(0, completed)
    assert raised.value.size > raised.value.limit == DEFAULT_MAX_METADATA_BYTES
    assert str(raised.value.size) in str(raised.value)


def test_too_many_offsets_raise_before_encoding() -> None:
    with pytest.raises(MetadataTooLarge) as raised:
        encode_completed(0, range(1, MAX_COMPLETED_OFFSETS + 2))
    assert raised.value.unit == "offsets"
    assert raised.value.size == MAX_COMPLETED_OFFSETS + 1
    assert raised.value.limit == MAX_COMPLETED_OFFSETS


def test_largest_allowed_set_round_trips() -> None:
    completed = range(1, MAX_COMPLETED_OFFSETS + 1)
    assert decode_completed(0, encode_completed(0, completed)) == set(completed)


def test_metadata_too_large_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(MetadataTooLarge(5_000, 4_096)))
    assert (error.size, error.limit, error.unit) == (5_000, 4_096, "bytes")
    assert "5000" in str(error)
    assert "4096" in str(error)


# Caller bugs


@pytest.mark.parametrize("bad", [[10], [9], [0], [11, 12, 10]])
def test_offsets_at_or_below_base_raise(bad: list[int]) -> None:
    with pytest.raises(ValueError, match="not above the committed offset 10"):
        encode_completed(10, bad)


def test_offsets_outside_kafka_range_raise() -> None:
    with pytest.raises(ValueError, match="base offset -1"):
        encode_completed(-1, [5])
    with pytest.raises(ValueError, match="not a Kafka offset"):
        encode_completed(0, [2**63])


# Text decode must refuse, quietly


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "checkpoint at 2024-01-01",
        '{"owner": "another-tool"}',
        "pfk1",
        "pfk1:",
        "pfk1:r",
        "pfk1:r====",
        "pfk1:rnot base64!",
        "pfk1:rZAEA\nAA==",  # base64 of the control below, with a stray character
        "pfk1:x" + base64.b64encode(bytes([100, 1, 0, 0])).decode(),
        "pfk2:r" + base64.b64encode(bytes([100, 1, 0, 0])).decode(),
        "PFK1:r" + base64.b64encode(bytes([100, 1, 0, 0])).decode(),
        "pfk1:R" + base64.b64encode(bytes([100, 1, 0, 0])).decode(),  # not zlib data
    ],
)
def test_foreign_or_broken_text_decodes_empty(text: str | None) -> None:
    assert decode_completed(100, text) == frozenset()
    # Control: the same payload with the right prefix and tag is read.
    assert decode_completed(100, _metadata("r", bytes([100, 1, 0, 0]))) == {101}


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("count of zero", bytes([100, 0])),
        ("count above the stored runs", bytes([100, 2, 0, 0])),
        ("count below the stored runs", bytes([100, 1, 0, 1])),
        ("gap without run", bytes([100, 1, 0, 0, 5])),
        ("truncated varint", bytes([100, 1, 0, 0x80])),
        ("partial varint after a whole run", bytes([100, 1, 0, 0, 0x80])),
        ("varint longer than 10 bytes", bytes([100, 1]) + b"\x81" + b"\x80" * 9 + bytes(2)),
        ("base only", bytes([100])),
        ("base varint longer than 10 bytes", b"\xe4" + b"\x80" * 9 + bytes([0, 1, 0, 0])),
        ("nothing", b""),
        ("count above the cap", _varint(100) + _varint(MAX_COMPLETED_OFFSETS + 1) + bytes(2)),
        ("offset above 2**63 - 1", _varint(100) + _varint(1) + _varint(2**63) + bytes(1)),
    ],
)
def test_corrupt_runs_payload_decodes_empty(name: str, payload: bytes) -> None:
    assert decode_completed(100, _metadata("r", payload)) == frozenset(), name


def test_huge_run_in_corrupt_text_is_refused_without_expanding_it() -> None:
    # Claims one offset, stores a run of 2**40: expanding it first would exhaust memory.
    text = _metadata("r", _varint(100) + _varint(1) + _varint(0) + _varint(2**40))
    assert decode_completed(100, text) == frozenset()


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("empty bitset", bytes([100, 1])),
        ("trailing zero byte", bytes([100, 1, 1, 0])),
        ("count differs from bits", bytes([100, 2, 1])),
        ("oversized bitset", bytes([100, 1]) + bytes(64 * 1024) + b"\x01"),
    ],
)
def test_corrupt_bitset_payload_decodes_empty(name: str, payload: bytes) -> None:
    assert decode_completed(100, _metadata("b", payload)) == frozenset(), name


def test_bitset_offset_above_kafka_range_decodes_empty() -> None:
    base = 2**63 - 3
    header = _varint(base) + _varint(1)
    assert decode_completed(base, _metadata("b", header + bytes([0b10]))) == {2**63 - 1}
    assert decode_completed(base, _metadata("b", header + bytes([0b100]))) == frozenset()


def test_trailing_data_after_zlib_stream_decodes_empty() -> None:
    payload = zlib.compress(bytes([100, 1, 0, 0]))
    assert decode_completed(100, _metadata("R", payload)) == {101}
    assert decode_completed(100, _metadata("R", payload + b"x")) == frozenset()


@given(bases, st.text())
def test_any_text_decodes_without_raising(base: int, text: str) -> None:
    decoded = decode_completed(base, text)
    assert isinstance(decoded, frozenset)
    if not text.startswith(METADATA_PREFIX):
        assert decoded == frozenset()


@given(
    st.integers(0, 300),
    st.sampled_from(["r", "R", "b", "B", "x", ""]),
    st.binary(max_size=64),
    st.booleans(),
)
def test_our_prefix_with_any_payload_decodes_without_raising(
    base: int, tag: str, payload: bytes, compressed: bool
) -> None:
    data = zlib.compress(payload) if compressed else payload
    decoded = decode_completed(base, _metadata(tag, data))
    assert all(offset > base for offset in decoded)


@given(bases, st.text(max_size=40))
def test_our_prefix_with_any_text_decodes_without_raising(base: int, rest: str) -> None:
    decoded = decode_completed(base, METADATA_PREFIX + rest)
    assert all(offset > base for offset in decoded)


@given(any_completed)
def test_every_truncation_decodes_empty(case: tuple[int, set[int]]) -> None:
    base, completed = case
    text = encode_completed(base, completed, max_bytes=UNLIMITED)
    assert decode_completed(base, text) == completed
    for cut in range(len(text)):
        assert decode_completed(base, text[:cut]) == frozenset(), cut


@given(any_completed, st.data())
def test_changed_character_never_raises(case: tuple[int, set[int]], data: st.DataObject) -> None:
    base, completed = case
    text = encode_completed(base, completed, max_bytes=UNLIMITED)
    position = data.draw(st.integers(0, len(text) - 1))
    character = data.draw(st.characters())
    decoded = decode_completed(base, text[:position] + character + text[position + 1 :])
    assert all(offset > base for offset in decoded)


@given(any_completed, st.one_of(st.integers(-(10**12), -1), st.integers(1, 10**12)))
def test_text_for_another_base_is_stale(case: tuple[int, set[int]], shift: int) -> None:
    base, completed = case
    text = encode_completed(base, completed, max_bytes=UNLIMITED)
    assert decode_completed(base, text) == completed
    assert decode_completed(base + shift, text) == frozenset()
