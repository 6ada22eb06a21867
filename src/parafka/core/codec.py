"""Sets of completed offsets stored in Kafka commit metadata, so a new owner can skip them. Pure.

A partition's committed offset (the *base*) is its lowest offset not done; the offsets done above
it travel in the commit's metadata string. Format, version 1:
``"pfk1:" + tag + base64(payload)`` (standard alphabet, padded), where payload is
``varint(base) varint(count) body`` in unsigned LEB128 varints. Tags ``r``/``b`` mean the payload
as is, ``R``/``B`` the same payload zlib-compressed. Bodies:

- ``r``, runs: per run of done offsets, ``varint(gap) varint(length - 1)``, where gap counts the
  not-done offsets before the run, less the one that must separate it from the previous run;
- ``b``, bitset: bit ``i`` (little-endian, lowest bit first) is set when ``base + 1 + i`` is done,
  up to the highest done offset.

The encoder keeps the shortest form. The stored base and count let the decoder reject stale,
truncated or corrupt text.
"""

from __future__ import annotations

import base64
import zlib
from collections import deque
from collections.abc import Iterable
from functools import partial
from itertools import chain, compress, count, islice, repeat
from operator import add, ne, sub

from parafka.core.errors import wire_name

METADATA_PREFIX = "pfk1:"
DEFAULT_MAX_METADATA_BYTES = 4096  # the broker's offset.metadata.max.bytes default
MAX_COMPLETED_OFFSETS = 1 << 20  # bounds the memory that decoding any text can cost
MAX_OFFSET = 2**63 - 1  # Kafka offsets are signed 64-bit integers

_RUNS, _RUNS_ZLIB, _BITSET, _BITSET_ZLIB = "r", "R", "b", "B"
_BITSET_MAX_BYTES = 64 * 1024  # a longer bitset is not tried: runs win or nothing fits
_ZLIB_MAX_RATIO = 1032  # deflate never shrinks data more than this
_MAX_PAYLOAD_BYTES = 32 + 20 * MAX_COMPLETED_OFFSETS  # header + two varints per offset
_DIGIT_TO_FLAG = bytes.maketrans(b"01", b"\x00\x01")


@wire_name("parafka.codec.MetadataTooLarge")
class MetadataTooLarge(Exception):
    """The completed set does not fit in commit metadata; commit the plain offset instead.

    ``size`` is the length of the shortest text tried (compression is not tried when even its best
    ratio could not reach the limit) and ``limit`` the one it exceeds, both in bytes; or both in
    offsets when ``unit == "offsets"``: the set holds more than MAX_COMPLETED_OFFSETS.
    """

    def __init__(self, size: int, limit: int, unit: str = "bytes") -> None:
        super().__init__(size, limit, unit)  # keeps the exception picklable
        self.size = size
        self.limit = limit
        self.unit = unit

    def __str__(self) -> str:
        if self.unit == "offsets":
            return (
                f"{self.size} completed offsets above the committed one, over the limit of "
                f"{self.limit}; commit the plain offset and let the partition catch up"
            )
        return (
            f"completed offsets need {self.size} bytes of commit metadata, over the limit of "
            f"{self.limit} (offset.metadata.max.bytes); commit the plain offset and let the "
            "partition catch up"
        )


def encode_completed(
    base: int, completed: Iterable[int], max_bytes: int = DEFAULT_MAX_METADATA_BYTES
) -> str:
    """Commit metadata text for the offsets in `completed`, all above the committed `base`.

    Returns "" when `completed` is empty. Raises MetadataTooLarge when the shortest encoding
    is longer than `max_bytes`, and ValueError for an offset at or below `base`.
    """
    if not 0 <= base <= MAX_OFFSET:
        raise ValueError(f"base offset {base} is not a Kafka offset (0 to 2**63 - 1)")
    if max_bytes < 0:
        raise ValueError(f"max_bytes is {max_bytes}; use a byte count of 0 or more")
    offsets = sorted(set(completed))
    if not offsets:
        return ""
    if offsets[0] <= base:
        raise ValueError(
            f"completed offset {offsets[0]} is not above the committed offset {base}; "
            "pass only offsets done above the lowest offset not done"
        )
    if offsets[-1] > MAX_OFFSET:
        raise ValueError(f"completed offset {offsets[-1]} is not a Kafka offset (above 2**63 - 1)")
    if len(offsets) > MAX_COMPLETED_OFFSETS:
        raise MetadataTooLarge(len(offsets), MAX_COMPLETED_OFFSETS, unit="offsets")

    firsts, lasts = _runs(offsets)
    header = _varint(base) + _varint(len(offsets))
    forms = [(_RUNS, _RUNS_ZLIB, header + _runs_body(base, firsts, lasts))]
    span = offsets[-1] - base  # bits in the bitset
    if (span + 7) // 8 <= _BITSET_MAX_BYTES:
        body = _bitset_body(base, span, offsets, firsts, lasts)
        forms.append((_BITSET, _BITSET_ZLIB, header + body))
    candidates: list[tuple[str, bytes]] = []
    for tag, zlib_tag, payload in forms:
        candidates.append((tag, payload))
        if len(payload) <= max_bytes * _ZLIB_MAX_RATIO:  # else it cannot fit even compressed
            candidates.append((zlib_tag, zlib.compress(payload, 9)))
    tag, payload = min(candidates, key=lambda candidate: len(candidate[1]))
    text = METADATA_PREFIX + tag + base64.b64encode(payload).decode("ascii")
    if len(text) > max_bytes:  # ASCII: characters are UTF-8 bytes
        raise MetadataTooLarge(len(text), max_bytes)
    return text


def decode_completed(base: int, text: str | None) -> frozenset[int]:
    """Offsets above `base` that `text` (commit metadata) records as done.

    Empty for no text, text another tool wrote, an unknown version, corrupt text, and text
    written for another base (the offset was reset since, so the set is stale). Never raises.
    """
    if not text or not text.startswith(METADATA_PREFIX):
        return frozenset()
    try:
        return _decode(base, text[len(METADATA_PREFIX) :])
    except (ValueError, zlib.error):
        return frozenset()


def _runs(offsets: list[int]) -> tuple[list[int], list[int]]:
    """First and last offsets of the runs of consecutive offsets in a sorted list, no duplicates."""
    steps = map(sub, islice(offsets, 1, None), offsets)
    # Index of every offset that does not follow its predecessor, found without a Python loop.
    starts = [0, *compress(count(1), map(ne, steps, repeat(1)))]
    ends = list(map(partial(add, -1), islice(starts, 1, None)))
    ends.append(len(offsets) - 1)
    return list(map(offsets.__getitem__, starts)), list(map(offsets.__getitem__, ends))


def _runs_body(base: int, firsts: list[int], lasts: list[int]) -> bytes:
    values: list[int] = [0] * (2 * len(firsts))
    # A run starts at least two past the previous run's last offset, the first at base + 1.
    next_frees = [base + 1, *map(partial(add, 2), islice(lasts, len(lasts) - 1))]
    values[0::2] = map(sub, firsts, next_frees)
    values[1::2] = map(sub, lasts, firsts)
    return _varints(values)


def _bitset_body(
    base: int, span: int, offsets: list[int], firsts: list[int], lasts: list[int]
) -> bytes:
    # One ASCII digit per offset, lowest first, then int(..., 2) packs them into bits in C.
    digits = bytearray(b"0") * span
    if len(firsts) * 4 < len(offsets):  # long runs: fill a slice per run
        for first, last in zip(firsts, lasts, strict=True):
            digits[first - base - 1 : last - base] = b"1" * (last - first + 1)
    else:  # short runs: one C-level store per offset
        deque(
            map(digits.__setitem__, map(partial(add, -base - 1), offsets), repeat(0x31)), maxlen=0
        )
    digits.reverse()
    return int(digits, 2).to_bytes((span + 7) // 8, "little")


def _varint(value: int) -> bytes:
    return _varints([value])


def _varints(values: list[int]) -> bytes:
    """Unsigned LEB128 encoding of non-negative `values`, one after another."""
    if not values or max(values) < 0x80:
        return bytes(values)
    out = bytearray()
    for value in values:
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _decode(base: int, tagged: str) -> frozenset[int]:
    """The set in `tagged` (tag and base64); ValueError or zlib.error when unusable."""
    tag, encoded = tagged[:1], tagged[1:]
    if tag not in (_RUNS, _RUNS_ZLIB, _BITSET, _BITSET_ZLIB):
        raise ValueError(f"unknown encoding tag {tag!r}")
    payload = base64.b64decode(encoded, validate=True)
    if tag in (_RUNS_ZLIB, _BITSET_ZLIB):
        payload = _inflate(payload)
    stored_base, pos = _read_varint(payload, 0)
    if stored_base != base:
        raise ValueError(f"written for base {stored_base}, not {base}: stale")
    total, pos = _read_varint(payload, pos)
    if not 0 < total <= MAX_COMPLETED_OFFSETS:
        raise ValueError(f"bad offset count {total}")
    if tag in (_RUNS, _RUNS_ZLIB):
        return _parse_runs(base, payload[pos:], total)
    return _parse_bitset(base, payload[pos:], total)


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_PAYLOAD_BYTES)
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise ValueError("truncated, oversized or trailing zlib data")
    return out


def _parse_runs(base: int, body: bytes, total: int) -> frozenset[int]:
    values = _parse_varints(body)
    runs: list[range] = []
    next_free = base + 1
    seen = 0
    # strict: a gap without its run raises ValueError
    for gap, length_less_one in zip(values[0::2], values[1::2], strict=True):
        start = next_free + gap
        next_free = start + length_less_one + 2
        runs.append(range(start, next_free - 1))
        seen += length_less_one + 1
    if seen != total:  # checked before expanding: a corrupt run could be huge
        raise ValueError(f"{seen} offsets, not the stored count {total}")
    if runs[-1][-1] > MAX_OFFSET:
        raise ValueError("offset above 2**63 - 1")
    return frozenset(chain.from_iterable(runs))


def _parse_bitset(base: int, body: bytes, total: int) -> frozenset[int]:
    if not body or body[-1] == 0 or len(body) > _BITSET_MAX_BYTES:
        raise ValueError("empty, padded or oversized bitset")
    bits = int.from_bytes(body, "little")
    if bits.bit_count() != total:
        raise ValueError("bit count differs from the stored count")
    if base + bits.bit_length() > MAX_OFFSET:
        raise ValueError("offset above 2**63 - 1")
    # Digit i (as byte 0 or 1) says whether base + 1 + i is done; compress() picks them in C.
    flags = format(bits, "b").encode("ascii")[::-1].translate(_DIGIT_TO_FLAG)
    return frozenset(compress(count(base + 1), flags))


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = 0
    for shift in range(0, 70, 7):  # at most 10 bytes: enough for any 64-bit value
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def _parse_varints(buf: bytes) -> list[int]:
    """Every varint in `buf`, which must end with a complete one."""
    if buf.isascii():  # no continuation bits: each byte is a value
        return list(buf)
    values: list[int] = []
    value = shift = 0
    for byte in buf:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            values.append(value)
            value = shift = 0
        elif shift == 63:
            raise ValueError("varint longer than 10 bytes")
        else:
            shift += 7
    if shift:
        raise ValueError("truncated varint")
    return values
