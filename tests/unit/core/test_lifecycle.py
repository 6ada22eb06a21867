"""`with` on what parafka runs in the background: started on entry, stopped however the
block ends."""

from __future__ import annotations

from typing import Self

import pytest

from parafka.core.lifecycle import Background


class _Recorder(Background):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> Self:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


def test_with_starts_and_stops() -> None:
    with _Recorder() as thing:
        assert thing.calls == ["start"]
    assert thing.calls == ["start", "stop"]


def test_with_stops_when_the_block_raises() -> None:
    thing = _Recorder()
    with pytest.raises(RuntimeError), thing:
        raise RuntimeError("boom")
    assert thing.calls == ["start", "stop"]
