"""Fast handlers on the control thread (executors/handover.py), end to end on the local
broker: they run there, and one that hangs there holds back neither the other keys nor the
commits nor the stop; the stand-by thread carries the loop on."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from parafka import Record
from parafka.testing import LocalBroker

from .helpers import committed, consumer, end_offsets, group, produce_keyed, wait_until


def test_fast_handlers_run_on_the_control_thread(
    broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic, gid = broker.new_topic("here", partitions=2), group()
    produce_keyed(broker, topic, 20_000, keys=100)
    threads: set[str] = set()
    caplog.set_level(logging.INFO, logger="parafka")
    stats = consumer(
        broker, lambda r: threads.add(threading.current_thread().name), topic, gid
    ).run(until_idle=1.5)
    assert stats.processed == 20_000
    assert "parafka-control" in threads  # after the first chunks measured it fast
    assert "running them on the control thread" in caplog.text
    assert committed(broker, gid, topic, 2) == end_offsets(broker, topic, 2, 20_000)


def test_a_handler_hung_on_the_control_thread_holds_back_only_its_key(
    broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    total, hung_at = 20_000, 15_000  # by then the handlers run on the control thread
    topic, gid = broker.new_topic("hang-here", partitions=1), group()
    produce_keyed(broker, topic, total, keys=100)
    release = threading.Event()
    hung_on: list[str] = []
    done: list[int] = []

    def handle(record: Record) -> None:
        if record.offset == hung_at:
            hung_on.append(threading.current_thread().name)
            release.wait(60)
        done.append(record.offset)

    caplog.set_level(logging.INFO, logger="parafka")
    pc = consumer(
        broker, handle, topic, gid, ordering="key", commit_interval=0.2, shutdown_timeout=2.0
    )
    pc.start()
    try:
        hung_key = hung_at % 100  # produce_keyed's keys cycle
        others = {o for o in range(total) if o % 100 != hung_key}
        wait_until(lambda: others <= set(done), 60, "every other key's records")
        assert hung_on == ["parafka-control"]
        assert "goes on with the loop" in caplog.text
        # The commit moves up to the hung record, not past it.
        wait_until(lambda: committed(broker, gid, topic, 1) == {0: hung_at}, 30, "the commit at it")
        # Stopping does not wait for the hung handler (it is abandoned, not committed).
        started = time.monotonic()
        pc.stop()
        assert pc.join(30) is not None
        assert time.monotonic() - started < 20
        assert committed(broker, gid, topic, 1) == {0: hung_at}
    finally:
        release.set()
        pc.stop(drain=False)
        pc.join(10)
