"""The pure rules of `dlq replay`: filters, destinations, header stripping, group names."""

from __future__ import annotations

import pytest

from parafka.core import deadletter
from parafka.core.deadletter import Failure, dead_letter, replayed_headers
from parafka.core.errors import ConfigError
from parafka.core.record import Headers, Record
from parafka.dlq.redrive import (
    FILTER_NAMES,
    Destination,
    NoDestination,
    Selection,
    Tally,
    default_group,
    destination,
    destination_partition,
    parse_filter,
)

ORIGINAL: Headers = [("trace-id", b"abc"), ("empty", None)]


def letter(
    error: BaseException | None = None,
    topic: str = "orders",
    partition: int = 3,
    stage: str = "handler",
) -> Headers:
    """The headers of a dead letter for a record of `topic`[`partition`]@17."""
    record = Record(topic, partition, 17, b"k", b"v", list(ORIGINAL))
    failure = Failure(error or TimeoutError("slow"), 5, 1_700_000_000.0, 1_700_000_009.5, stage)
    produced = dead_letter(record, "orders.dlq", "pricing", failure)
    return list(produced[3] or [])  # type: ignore[arg-type]


# -- filters ------------------------------------------------------------------------------
def test_filter_names_are_the_dead_letter_headers() -> None:
    assert set(FILTER_NAMES) == {
        "topic",
        "partition",
        "offset",
        "group",
        "attempts",
        "stage",
        "exception",
        "message",
        "first-failure",
        "last-failure",
    }
    for name in FILTER_NAMES:
        assert deadletter.header_text(letter(), deadletter.PREFIX + name) is not None


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("exception=TimeoutError", True),
        ("exception=*Timeout*", True),
        ("exception=timeouterror", False),  # case-sensitive, whatever the platform
        ("exception=ValueError", False),
        ("topic=ord?rs", True),
        ("partition=[0-3]", True),
        ("partition=4", False),
        ("message=slow", True),
        ("message=", False),
        ("attempts=5", True),
        ("first-failure=2023-11-14T22:13:20.000Z", True),
        ("last-failure=*:29.500Z", True),
        ("stage=handler", True),
        ("parafka.dlq.group=pricing", True),  # the full header name works too
    ],
)
def test_one_filter(text: str, matches: bool) -> None:
    assert parse_filter(text).matches(letter()) is matches


def test_a_pattern_may_contain_equals_signs() -> None:
    headers = letter(ValueError("a=b"))
    assert parse_filter("message=a=b").matches(headers)


def test_a_missing_header_never_matches() -> None:
    headers = [h for h in letter() if h[0] != deadletter.STAGE]
    assert not parse_filter("stage=*").matches(headers)
    assert not parse_filter("stage=*").matches(None)


def test_every_filter_must_match() -> None:
    timeout_in_orders = letter(TimeoutError("x"), topic="orders")
    timeout_in_payments = letter(TimeoutError("x"), topic="payments")
    value_in_orders = letter(ValueError("x"), topic="orders")
    selection = Selection.parse(["exception=TimeoutError", "topic=orders"])
    assert selection.matches(timeout_in_orders)
    assert not selection.matches(timeout_in_payments)
    assert not selection.matches(value_in_orders)


def test_no_filter_selects_everything() -> None:
    assert Selection().matches(letter())
    assert Selection().matches(None)


def test_a_module_qualified_exception_matches_with_a_glob() -> None:
    class Unavailable(Exception):
        pass

    headers = letter(Unavailable("down"))
    assert not parse_filter("exception=Unavailable").matches(headers)
    assert parse_filter("exception=*.Unavailable").matches(headers)


def test_an_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_filter("exceptoin=*Timeout*")
    message = str(info.value)
    assert "\n" not in message
    assert "'exceptoin'" in message
    assert "exception, first-failure, group, last-failure, message, offset, partition" in message


@pytest.mark.parametrize("text", ["exception", "=TimeoutError", "  =x", ""])
def test_a_filter_without_name_or_equals_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not NAME=PATTERN"):
        parse_filter(text)


# -- destination --------------------------------------------------------------------------
def test_back_to_the_source_topic_and_partition() -> None:
    assert destination(letter(topic="orders", partition=3), None, "d[0]@5") == Destination(
        "orders", 3
    )


def test_to_overrides_the_source_and_lets_the_partitioner_choose() -> None:
    assert destination(letter(topic="orders"), "retry", "d[0]@5") == Destination("retry", None)


def test_to_naming_the_source_keeps_the_partition() -> None:
    assert destination(letter(topic="orders", partition=2), "orders", "d[0]@5") == Destination(
        "orders", 2
    )


def test_no_source_topic_and_no_to_names_the_offset_and_the_fix() -> None:
    headers = [h for h in letter() if h[0] != deadletter.TOPIC]
    with pytest.raises(NoDestination) as info:
        destination(headers, None, "orders.dlq[1]@42")
    assert "orders.dlq[1]@42" in str(info.value)
    assert "--to" in str(info.value)
    assert isinstance(info.value, ConfigError)  # exit 2 on the command line
    assert destination(headers, "elsewhere", "orders.dlq[1]@42") == Destination("elsewhere", None)


def test_a_partition_header_that_is_not_a_number_is_ignored() -> None:
    headers: Headers = [(deadletter.TOPIC, b"orders"), (deadletter.PARTITION, b"x")]
    assert destination(headers, None, "d[0]@0") == Destination("orders", None)


def test_a_partition_that_no_longer_exists_goes_to_the_partitioner() -> None:
    assert destination_partition(Destination("orders", 3), partitions=4) == 3
    assert destination_partition(Destination("orders", 3), partitions=2) is None
    assert destination_partition(Destination("orders", None), partitions=2) is None


# -- headers ------------------------------------------------------------------------------
def test_a_dead_letter_keeps_key_and_value_in_place() -> None:
    record = Record("orders", 0, 1, b"the-key", b"the-value", [])
    produced = dead_letter(record, "orders.dlq", "g", Failure(ValueError(), 1, 0.0, 0.0))
    assert (produced[0], produced[2], produced[1]) == (
        "orders.dlq",
        b"the-key",
        b"the-value",
    )


def test_replayed_headers_are_the_original_ones_plus_a_count() -> None:
    assert replayed_headers(letter()) == [*ORIGINAL, (deadletter.REPLAY_COUNT, b"1")]


def test_the_replay_count_grows_with_each_replay() -> None:
    once = replayed_headers(letter())
    record = Record("orders", 0, 1, b"k", b"v", once)
    failure = Failure(ValueError("again"), 1, 0.0, 0.0)
    again = dead_letter(record, "orders.dlq", "g", failure)[3]
    assert replayed_headers(again) == [*ORIGINAL, (deadletter.REPLAY_COUNT, b"2")]  # type: ignore[arg-type]


def test_a_replay_count_that_is_not_a_number_restarts_at_one() -> None:
    assert replayed_headers([(deadletter.REPLAY_COUNT, b"many")]) == [
        (deadletter.REPLAY_COUNT, b"1")
    ]
    assert replayed_headers(None) == [(deadletter.REPLAY_COUNT, b"1")]


# -- group and summary ----------------------------------------------------------------------
def test_default_group_names_topic_and_destination() -> None:
    assert default_group("orders.dlq", None, Selection()) == "parafka-replay.orders.dlq.to-source"
    assert default_group("orders.dlq", "retry", Selection()) == "parafka-replay.orders.dlq.to-retry"


def test_default_group_depends_on_the_filters_not_their_order() -> None:
    one = Selection.parse(["exception=X", "topic=orders"])
    same = Selection.parse(["topic=orders", "exception=X"])
    other = Selection.parse(["exception=Y"])
    group = default_group("d", None, one)
    assert group == default_group("d", None, same)
    assert group.startswith("parafka-replay.d.to-source.")
    assert len({group, default_group("d", None, other), default_group("d", None, Selection())}) == 3


def test_summary_lines() -> None:
    tally = Tally()
    tally.replayed.update({"payments": 2, "orders": 5})
    tally.filtered = 3
    assert tally.lines("orders.dlq", "g", 1.25) == [
        "replayed 7 record(s) from orders.dlq in 1.2 s, 3 filtered out (group g)",
        "  orders: 5",
        "  payments: 2",
    ]
