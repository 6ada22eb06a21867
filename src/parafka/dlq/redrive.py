"""The rules of `parafka dlq replay`, with no I/O: which dead letters to replay, where
each one goes, and the consumer group that remembers the progress. Pure.

The I/O shell around these rules is `replay.py`; the dead-letter format is `deadletter.py`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import NamedTuple

from parafka.core import deadletter
from parafka.core.errors import ConfigError, wire_name
from parafka.core.record import Headers

# --filter NAME: the dead-letter header names without their `parafka.dlq.` prefix.
FILTER_NAMES = tuple(
    sorted(
        name.removeprefix(deadletter.PREFIX)
        for name in (
            deadletter.TOPIC,
            deadletter.PARTITION,
            deadletter.OFFSET,
            deadletter.GROUP,
            deadletter.ATTEMPTS,
            deadletter.STAGE,
            deadletter.EXCEPTION,
            deadletter.MESSAGE,
            deadletter.FIRST_FAILURE,
            deadletter.LAST_FAILURE,
        )
    )
)


class HeaderFilter(NamedTuple):
    """One `--filter NAME=PATTERN`: the header's text must match the shell glob PATTERN."""

    name: str  # short name, e.g. "exception"
    pattern: str

    @property
    def header(self) -> str:
        return deadletter.PREFIX + self.name

    def matches(self, headers: Headers | None) -> bool:
        """True when the header is present and its text matches (case-sensitive)."""
        value = deadletter.header_text(headers, self.header)
        return value is not None and fnmatchcase(value, self.pattern)

    def __str__(self) -> str:
        return f"{self.name}={self.pattern}"


def parse_filter(text: str) -> HeaderFilter:
    """`NAME=PATTERN` → HeaderFilter; a ConfigError naming the valid names otherwise."""
    name, sep, pattern = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(
            f"--filter {text!r} is not NAME=PATTERN: write it like --filter 'exception=*Timeout*'"
        )
    short = name.removeprefix(deadletter.PREFIX)  # the full header name is accepted too
    if short not in FILTER_NAMES:
        raise ConfigError(
            f"--filter {text!r}: unknown name {name!r}; use one of {', '.join(FILTER_NAMES)}"
        )
    return HeaderFilter(short, pattern)


class Selection:
    """Several filters: a dead letter is replayed only when every one of them matches."""

    def __init__(self, filters: Iterable[HeaderFilter] = ()) -> None:
        self.filters = tuple(filters)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Selection:
        return cls(parse_filter(text) for text in texts)

    def matches(self, headers: Headers | None) -> bool:
        return all(f.matches(headers) for f in self.filters)

    def canonical(self) -> str:
        """The filters in a stable order (the order given on the command line is irrelevant)."""
        return "\n".join(sorted(str(f) for f in self.filters))


class Destination(NamedTuple):
    """Where a replayed record goes; partition None lets the producer's partitioner choose."""

    topic: str
    partition: int | None


@wire_name("parafka.redrive.NoDestination")
class NoDestination(ConfigError):
    """A dead letter does not say where it came from and no --to was given."""


def destination(headers: Headers | None, to: str | None, where: str) -> Destination:
    """Where the dead letter at `where` (e.g. "orders.dlq[0]@17") goes back to.

    `to` given: that topic. Otherwise the source topic named in the dead letter. Going back
    to its own source topic, a record keeps its original partition (the replaying producer's
    partitioner may not be the one that placed it, and per-key order lives in a partition);
    `destination_partition` checks that partition still exists.
    """
    source = deadletter.header_text(headers, deadletter.TOPIC)
    topic = to if to is not None else source
    if not topic:
        raise NoDestination(
            f"dead letter {where} has no {deadletter.TOPIC} header, so its source topic is "
            "unknown: pass --to TOPIC to say where to replay it"
        )
    partition = None
    if topic == source:
        text = deadletter.header_text(headers, deadletter.PARTITION)
        if text is not None and text.isdigit():
            partition = int(text)
    return Destination(topic, partition)


def destination_partition(wanted: Destination, partitions: int) -> int | None:
    """The partition to produce to, given the topic's partition count: the original one
    while it exists, else None (the partitioner decides, by key)."""
    if wanted.partition is not None and wanted.partition < partitions:
        return wanted.partition
    return None


def default_group(dlq_topic: str, to: str | None, selection: Selection) -> str:
    """The consumer group a replay keeps its progress in, when --group is not given.

    It names the dead-letter topic and the destination, plus a digest of the filters when
    there are any: a replay with other filters or another destination keeps its own
    progress instead of skipping what a narrower replay passed over.
    """
    name = f"parafka-replay.{dlq_topic}.to-{to if to is not None else 'source'}"
    canonical = selection.canonical()
    if canonical:
        name += "." + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return name


@dataclass
class Tally:
    """What a replay did: records replayed (acknowledged) per destination topic, passed over."""

    replayed: Counter[str] = field(default_factory=Counter)
    filtered: int = 0

    @property
    def total_replayed(self) -> int:
        return sum(self.replayed.values())

    def lines(self, dlq_topic: str, group: str, seconds: float) -> list[str]:
        """The summary printed at the end: one headline, then one line per destination."""
        head = (
            f"replayed {self.total_replayed} record(s) from {dlq_topic} in {seconds:.1f} s, "
            f"{self.filtered} filtered out (group {group})"
        )
        return [head, *(f"  {topic}: {n}" for topic, n in sorted(self.replayed.items()))]
