"""Stopping from a signal handler must not take a lock the interrupted thread may hold."""

from __future__ import annotations

import signal
import threading

from parafka import ParallelConsumer
from parafka.engine.consumer import _StopOnSignals


def _consumer() -> ParallelConsumer:
    # Nothing connects before run(): building the loop needs no broker.
    consumer = ParallelConsumer(
        lambda record: None, bootstrap_servers="127.0.0.1:1", group_id="g", topics="t"
    )
    consumer._loop = consumer._new_loop()
    return consumer


def test_a_signal_stops_without_taking_the_wake_lock() -> None:
    consumer = _consumer()
    loop = consumer._loop
    assert loop is not None
    stopper = _StopOnSignals(consumer)
    # The foreground loop may be inside Completions.wait() (holding the Event's lock) when
    # the signal arrives; the handler then runs on that same thread. Hold the lock here and
    # run the handler on another thread: it must return without waiting for the lock.
    wake_lock = loop.completions._wake._cond
    with wake_lock:
        handler = threading.Thread(target=stopper._handle, args=(signal.SIGTERM, None))
        handler.start()
        handler.join(2.0)
        finished = not handler.is_alive()
    handler.join()
    assert finished, "the signal handler waited for the completions lock"
    assert loop._stop.is_set() and not loop._hard_stop.is_set()


def test_a_second_signal_asks_for_a_hard_stop() -> None:
    consumer = _consumer()
    loop = consumer._loop
    assert loop is not None
    stopper = _StopOnSignals(consumer)
    stopper._handle(signal.SIGINT, None)
    stopper._handle(signal.SIGINT, None)
    assert loop._stop.is_set() and loop._hard_stop.is_set()


def test_stop_from_another_thread_still_wakes_the_loop() -> None:
    consumer = _consumer()
    loop = consumer._loop
    assert loop is not None
    consumer.stop()
    assert loop.completions._wake.is_set()
