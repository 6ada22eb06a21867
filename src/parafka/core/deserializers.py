"""Turning a record's value bytes into what the handler works on, before the handler runs.

A value that cannot be decoded is not worth retrying: it fails with `DeserializationError`,
which goes straight to the dead-letter topic (or stops the consumer, by the failure policy).
Decoding runs where the handler runs (worker thread, event loop or worker process), never on
the control thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from parafka.core.errors import ConfigError, wire_name

Decode = Callable[[bytes | None], Any]
Deserializer = str | Decode

NAMES = ("bytes", "text", "json")


@wire_name("parafka.deserializers.DeserializationError")
class DeserializationError(ValueError):
    """The record's value could not be decoded by the configured deserializer."""


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


def _json(value: bytes | None) -> Any:
    return None if value is None else json.loads(value)


_BUILT_IN: dict[str, Decode] = {"text": _text, "json": _json}


def resolve(deserializer: Deserializer | None) -> Decode | None:
    """The decode function for a name ("bytes", "text", "json"), a "module:function"
    target or a callable; None for "bytes" (the value is used as it is)."""
    if deserializer is None or deserializer == "bytes":
        return None
    if callable(deserializer):
        return deserializer
    if deserializer in _BUILT_IN:
        return _BUILT_IN[deserializer]
    if ":" in deserializer:
        from parafka.core.loader import load_target

        function = load_target(deserializer)
        if not callable(function):
            raise ConfigError(f"deserializer {deserializer!r} is not callable: name a function")
        return function
    raise ConfigError(
        f"unknown deserializer {deserializer!r}: use one of {', '.join(NAMES)} or "
        "'module:function' (a function taking the value bytes)"
    )


def decode(function: Decode, value: bytes | None) -> Any:
    """Apply `function`; any failure becomes a DeserializationError naming the cause."""
    try:
        return function(value)
    except Exception as exc:
        raise DeserializationError(
            f"value could not be decoded by {getattr(function, '__name__', function)!s} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
