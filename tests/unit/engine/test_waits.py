"""waits.py: what the consumer says while it waits, and when it stops waiting."""

from __future__ import annotations

from parafka.engine.waits import ConnectWatch, WaitReporter, refused_message

REFUSED = (
    "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused "
    "(after 0ms in state CONNECT)"
)


def test_refused_connections_give_up_after_two_seconds() -> None:
    watch = ConnectWatch()
    watch.client_error("1/1 brokers are down", now=0.0)
    assert not watch.refused(10.0)  # not a refusal: the timeout decides
    watch.client_error(REFUSED, now=1.0)
    assert not watch.refused(2.9)
    assert watch.refused(3.0)
    message = refused_message("127.0.0.1:9", watch)
    assert "connection refused by 127.0.0.1:9" in message and "after 0ms" not in message
    assert "--bootstrap-servers" in message


def test_joining_is_reported_every_five_seconds_until_assigned() -> None:
    reporter = WaitReporter("g", ("orders",))
    lines = [reporter.joining(t / 4, assigned=False) for t in range(0, 4 * 11)]
    said = [line for line in lines if line]
    assert len(said) == 2
    assert said[0].startswith("waiting for group 'g' to assign partitions of orders (5 s so far)")
    assert "-X session.timeout.ms=6000" in said[0]  # the default timeout: say how to shorten it
    assert reporter.joining(12.0, assigned=True) is None
    assert reporter.joining(13.0, assigned=False) is None  # a new wait starts from zero


def test_no_session_hint_when_it_is_already_short() -> None:
    reporter = WaitReporter("g", ("t",), {"session.timeout.ms": "6000"})
    reporter.joining(0.0, False)
    line = reporter.joining(5.0, False)
    assert line is not None and "session.timeout.ms" not in line


def test_join_grace_ends_the_wait_only_when_set() -> None:
    reporter = WaitReporter("g", ("t",))
    reporter.joining(0.0, False)
    assert not reporter.join_given_up(1000.0)
    reporter.join_grace = 60.0
    assert not reporter.join_given_up(59.0)
    assert reporter.join_given_up(60.0)
    line = reporter.joining(60.0, False)
    assert line is not None and "giving up after --join-grace 60 s" in line
    assert "--join-grace 60 s" in reporter.not_assigned_message()


def test_connecting_is_reported() -> None:
    reporter = WaitReporter("g", ("t",))
    assert reporter.connecting("k:9092", 0.0, 15.0) is None
    assert reporter.connecting("k:9092", 5.0, 15.0) == (
        "still connecting to k:9092 (5 s of --connect-timeout 15 s)"
    )
