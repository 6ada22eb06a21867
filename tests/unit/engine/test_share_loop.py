"""The share loop against a scripted share consumer behind the seam (no broker): which
acknowledgement each record gets, that it never polls while a record is unacknowledged
(the client refuses that), and what a stop gives back. Broker behaviour itself is tested
on Apache Kafka (tests/integration/test_share_group.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from parafka import Record
from parafka.core.retry import RetryPolicy
from parafka.core.seam import Ack, AckCallback, ClientError, ShareMessage
from parafka.engine.settings import Settings
from parafka.engine.share import ShareLoop
from parafka.executors import Work, make_executor


class Message:
    def __init__(self, offset: int, count: int = 1) -> None:
        self._offset, self.count = offset, count

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return str(self._offset).encode()

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)

    def delivery_count(self) -> int:
        return self.count


class ScriptedShareConsumer:
    """Hands out `records` offsets in polls of `per_poll`; a released record comes back
    in a later poll with its delivery count raised, as a share group does."""

    def __init__(self, records: int, per_poll: int) -> None:
        self.available = [Message(o) for o in range(records)]
        self.per_poll = per_poll
        self.unacked: dict[int, Message] = {}
        self.acks: list[tuple[int, Ack]] = []
        self.closed = False

    def subscribe(self, topics: Sequence[str]) -> None:
        assert list(topics) == ["t"]

    def poll(self, timeout: float) -> list[ShareMessage]:
        if self.unacked:  # what confluent-kafka's ShareConsumer raises
            raise ClientError(f"{len(self.unacked)} records from previous poll not acknowledged")
        taken, self.available = self.available[: self.per_poll], self.available[self.per_poll :]
        self.unacked = {m.offset(): m for m in taken}
        return list(taken)

    def acknowledge(self, message: ShareMessage, ack: Ack) -> None:
        held = self.unacked.pop(message.offset())
        self.acks.append((message.offset(), ack))
        if ack is Ack.RELEASE:
            self.available.append(Message(held.offset(), held.count + 1))

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def loop_with(
    fake: ScriptedShareConsumer, handler: Callable[[Record], Any], **settings: Any
) -> ShareLoop:
    def connect(_config: Mapping[str, Any], _acked: AckCallback, _error: Any) -> Any:
        return fake

    s = Settings(
        "127.0.0.1:1", "g", ("t",), ordering="unordered", group_type="share", join_grace=0.5,
        **settings,
    )  # fmt: skip
    return ShareLoop(s, Work(handler), make_executor("thread", 4, None), connect=connect)


def test_each_record_is_acknowledged_by_its_outcome_and_polls_wait_for_all() -> None:
    fake = ScriptedShareConsumer(records=10, per_poll=4)
    attempts: dict[int, list[int]] = {}

    def handle(record: Record) -> None:
        attempts.setdefault(record.offset, []).append(record.attempt)
        if record.offset in (2, 7) and record.attempt < 3:
            raise ValueError("not yet")
        if record.offset == 9:
            raise ValueError("never")

    loop = loop_with(fake, handle, retry=RetryPolicy(max_attempts=3), on_failure="skip")
    stats = loop.run(until_idle=0.2)
    final = {offset: ack for offset, ack in fake.acks}
    assert final == {**dict.fromkeys(range(9), Ack.ACCEPT), 9: Ack.REJECT}
    assert [a for o, a in fake.acks if o == 2] == [Ack.RELEASE, Ack.RELEASE, Ack.ACCEPT]
    assert attempts[2] == attempts[7] == attempts[9] == [1, 2, 3]
    assert (stats.processed, stats.failed, stats.retried, stats.skipped_after_failure) == (
        9, 7, 6, 1,
    )  # fmt: skip
    assert fake.closed and not fake.unacked


def test_the_stop_policy_releases_the_record_and_raises() -> None:
    fake = ScriptedShareConsumer(records=3, per_poll=3)

    def handle(record: Record) -> None:
        if record.offset == 1:
            raise ValueError("bad")

    loop = loop_with(fake, handle, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(Exception, match=r"record t\[0\]@1 failed after 1 attempt"):
        loop.run(until_idle=0.2)
    assert (1, Ack.RELEASE) in fake.acks and fake.closed and not fake.unacked


def test_a_stop_releases_what_never_started_and_what_is_still_running() -> None:
    fake = ScriptedShareConsumer(records=20, per_poll=20)
    started, hold = threading.Semaphore(0), threading.Event()

    def handle(record: Record) -> None:
        started.release()
        hold.wait(10)

    loop = loop_with(fake, handle, shutdown_timeout=0.2)
    runner = threading.Thread(target=loop.run)
    runner.start()
    for _ in range(4):  # the executor's 4 threads are busy; 16 records wait
        assert started.acquire(timeout=10)
    loop.stop()
    runner.join(10)
    hold.set()
    assert not runner.is_alive()
    assert sorted(fake.acks) == [(o, Ack.RELEASE) for o in range(20)]
    assert fake.closed and loop.stats().processed == 0
