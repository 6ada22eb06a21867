"""Records and what handlers may return."""

from __future__ import annotations

import pickle

import pytest

from parafka import Output, Record
from parafka.build import compiled
from parafka.core.record import Produced, normalize_outputs


def test_record_accessors() -> None:
    r = Record("t", 1, 5, b"k", b'{"a": [1, 2]}', [("h", b"1"), ("h", b"2")], 1700)
    assert r.json() == {"a": [1, 2]}
    assert r.text() == '{"a": [1, 2]}'
    assert r.header("h") == b"2" and r.header("x") is None
    assert (r.attempt, r.timestamp) == (1, 1700)
    empty = Record("t", 0, 0)
    assert empty.json() is None and empty.text() == ""


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, []),
        (b"raw", [("out", b"raw", None, None)]),
        ("text", [("out", b"text", None, None)]),
        ({"a": 1}, [("out", b'{"a":1}', None, None)]),
        (
            Output("v", key="k", headers={"h": "x"}, topic="other"),
            [("other", b"v", b"k", [("h", "x")])],
        ),
        (
            [b"a", None, Output(b"b")],
            [("out", b"a", None, None), ("out", b"b", None, None)],
        ),
        (Output(b"v", key=b"k"), [("out", b"v", b"k", None)]),  # a lone Output
        (
            (Output(b"v", b"k", topic="other"), Output({"a": 1}, key="k")),
            [("other", b"v", b"k", None), ("out", b'{"a":1}', b"k", None)],
        ),
        (Output(None, key=b"k"), [("out", None, b"k", None)]),  # a tombstone
    ],
)
def test_normalize_outputs(result: object, expected: list[Produced]) -> None:
    assert normalize_outputs(result, "out") == expected


def test_output_without_topic_names_the_fix() -> None:
    for lone in (b"x", Output(b"x"), Output(b"x", key=b"k"), [Output(b"x")]):
        with pytest.raises(ValueError, match="output_topic"):
            normalize_outputs(lone, None)


def test_a_lone_output_names_its_own_topic_without_a_default() -> None:
    # the fast paths for one output (issue 14) keep the rules of the general one
    assert normalize_outputs(Output(b"v", topic="t"), None) == [("t", b"v", None, None)]
    assert normalize_outputs(Output(bytearray(b"v")), "out") == [("out", b"v", None, None)]
    assert normalize_outputs(Output(b"v", key="k"), "out") == [("out", b"v", b"k", None)]


def test_unsupported_return_type_names_the_fix() -> None:
    with pytest.raises(TypeError, match="'int'"):
        normalize_outputs(42, "out")


def test_an_output_cannot_be_changed() -> None:
    out = Output(b"v")
    with pytest.raises(AttributeError):
        out.value = b"w"  # type: ignore[misc]


def test_an_output_unpacks_compares_and_pickles_by_its_fields() -> None:
    out = Output(b"v", key=b"k", headers=[("h", b"1")])
    value, key, headers, topic = out
    assert (value, key, headers, topic) == (b"v", b"k", [("h", b"1")], None)
    assert out == Output(b"v", b"k", [("h", b"1")]) and out != Output(b"v", key=b"k")
    assert out != (b"v", b"k", [("h", b"1")], None)  # a class of its own, not a tuple
    assert pickle.loads(pickle.dumps(out)) == out
    assert hash(Output(b"v", key=b"k")) == hash(Output(b"v", key=b"k"))
    assert repr(Output(b"v")) == "Output(value=b'v', key=None, headers=None, topic=None)"


@pytest.mark.skipif(
    "parafka.core.record" not in compiled(), reason="immutable as the compiled class"
)
def test_an_output_cannot_be_changed_once_built() -> None:
    out = Output(b"v")
    with pytest.raises(AttributeError):
        out.value = b"w"  # type: ignore[misc]
