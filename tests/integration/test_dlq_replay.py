"""`parafka dlq replay` against the local broker: dead letters go back where they came from,
once; filters, --to, and failures that stop without losing progress.

Dead letters are made here with `deadletter.dead_letter()` and a plain producer, so these
tests do not depend on the consumer that writes them.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from parafka.core import deadletter
from parafka.core.deadletter import Failure, dead_letter
from parafka.core.errors import ConfigError
from parafka.core.record import Headers, Record
from parafka.dlq.redrive import NoDestination, Selection
from parafka.dlq.replay import Replayer, ReplayFailed, ReplayJob, replay
from parafka.testing import Broker
from parafka.testing.broker import free_port

from .helpers import committed
from .test_cli import cli_env, error_lines, run_cli, started_cli

pytestmark = pytest.mark.any_broker

TRACE: Headers = [("trace-id", b"t-1"), ("tenant", b"acme")]


def source_record(topic: str, partition: int, offset: int) -> Record:
    key = f"{topic}-k{offset % 3}".encode()
    return Record(topic, partition, offset, key, f"{topic}-{offset}".encode(), list(TRACE))


def failure(error: BaseException) -> Failure:
    return Failure(error, 3, 1_700_000_000.0, 1_700_000_002.0)


def write_dead_letters(
    broker: Broker,
    dlq: str,
    letters: Iterable[tuple[Record, BaseException]],
    partitions: int = 1,
) -> int:
    """Write a dead letter for each (record, error) to `dlq`, spread round-robin over its
    partitions; wait until all are acknowledged."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
    count = 0
    for count, (record, error) in enumerate(letters, 1):
        topic, value, key, headers = dead_letter(record, dlq, "app", failure(error))
        producer.produce(topic, value, key, partition=(count - 1) % partitions, headers=headers)
    assert producer.flush(30) == 0
    return count


def write_raw(broker: Broker, topic: str, value: bytes, headers: Headers) -> None:
    """A record that is not a proper dead letter (no parafka.dlq.topic header)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(topic, value, b"raw", headers=list(headers))
    assert producer.flush(30) == 0


Seen = tuple[int | None, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]


def contents(messages: list[Message]) -> Counter[Seen]:
    """(partition, key, value, headers) of each message, as a multiset."""
    return Counter(
        (m.partition(), m.key(), m.value(), tuple(m.headers() or ()))  # type: ignore[arg-type]
        for m in messages
    )


def replayed_form(record: Record, count: int = 1) -> Seen:
    return (
        record.partition,
        record.key,
        record.value,
        (*TRACE, (deadletter.REPLAY_COUNT, str(count).encode())),
    )


def assert_holds_exactly(broker: Broker, topic: str, partitions: int, count: int) -> None:
    """`topic` holds `count` records and no more: a sentinel written last to each partition
    must come back among exactly count + partitions records (a surplus record would leave
    some partition unread to its sentinel)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for p in range(partitions):
        producer.produce(topic, b"sentinel", partition=p)
    assert producer.flush(30) == 0
    messages = broker.consume_all(topic, expected=count + partitions, timeout=15)
    assert len(messages) == count + partitions
    assert sum(m.value() == b"sentinel" for m in messages) == partitions


def job(broker: Broker, dlq: str, **kwargs: object) -> ReplayJob:
    return ReplayJob(bootstrap_servers=broker.bootstrap_servers, dlq_topic=dlq, **kwargs)  # type: ignore[arg-type]


# -- the command, end to end ----------------------------------------------------------------
def test_round_trip_back_to_the_source_topics_then_nothing_again(broker: Broker) -> None:
    orders = broker.new_topic("orders", partitions=2)
    payments = broker.new_topic("payments", partitions=1)
    dlq = broker.new_topic("dlq", partitions=2)
    failed = [source_record(orders, o % 2, o) for o in range(6)]
    failed += [source_record(payments, 0, o) for o in range(4)]
    write_dead_letters(broker, dlq, [(r, ValueError(f"bad {r.offset}")) for r in failed], 2)
    args = ["dlq", "replay", "--from", dlq, "-b", broker.bootstrap_servers]

    first = run_cli(args, cli_env(), timeout=60)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"replayed 10 record(s) from {dlq} in ")
    assert f"0 filtered out (group parafka-replay.{dlq}.to-source)" in lines[0]
    assert sorted(lines[1:]) == [f"  {orders}: 6", f"  {payments}: 4"]
    for topic, records in ((orders, failed[:6]), (payments, failed[6:])):
        back = broker.consume_all(topic, expected=len(records), timeout=15)
        assert contents(back) == Counter(replayed_form(r) for r in records)
    assert committed(broker, f"parafka-replay.{dlq}.to-source", dlq, 2) == {0: 5, 1: 5}

    second = run_cli(args, cli_env(), timeout=60)

    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"replayed 0 record(s) from {dlq} ")
    assert_holds_exactly(broker, orders, 2, 6)
    assert_holds_exactly(broker, payments, 1, 4)


def test_only_new_dead_letters_are_replayed_by_a_later_run(broker: Broker) -> None:
    orders = broker.new_topic("orders")
    dlq = broker.new_topic("dlq")
    write_dead_letters(broker, dlq, [(source_record(orders, 0, o), ValueError()) for o in range(3)])
    assert replay(job(broker, dlq)).total_replayed == 3
    write_dead_letters(broker, dlq, [(source_record(orders, 0, 9), ValueError())])

    tally = replay(job(broker, dlq))

    assert tally.total_replayed == 1
    assert_holds_exactly(broker, orders, 1, 4)


def test_filters_replay_only_matching_dead_letters(broker: Broker) -> None:
    orders = broker.new_topic("orders")
    payments = broker.new_topic("payments")
    dlq = broker.new_topic("dlq", partitions=2)
    timeouts = [source_record(orders, 0, o) for o in range(3)]
    others = [source_record(orders, 0, o) for o in range(3, 5)]
    timeouts_elsewhere = [source_record(payments, 0, o) for o in range(2)]
    letters: list[tuple[Record, BaseException]] = [(r, TimeoutError("slow")) for r in timeouts]
    letters += [(r, ValueError("bad")) for r in others]
    letters += [(r, TimeoutError("slow")) for r in timeouts_elsewhere]
    write_dead_letters(broker, dlq, letters, partitions=2)
    selection = Selection.parse([f"topic={orders}", "exception=*Timeout*"])

    tally = replay(job(broker, dlq, selection=selection))

    assert (dict(tally.replayed), tally.filtered) == ({orders: 3}, 4)
    back = broker.consume_all(orders, expected=3, timeout=15)
    assert contents(back) == Counter(replayed_form(r) for r in timeouts)
    assert_holds_exactly(broker, orders, 1, 3)
    # The filtered-out records are passed over, and committed: the same replay is done...
    assert replay(job(broker, dlq, selection=selection)).total_replayed == 0
    # ...while an unfiltered replay keeps its own progress (another default group).
    assert replay(job(broker, dlq)).total_replayed == 7


def test_to_sends_everything_to_one_topic(broker: Broker) -> None:
    orders = broker.new_topic("orders", partitions=2)
    payments = broker.new_topic("payments")
    retry = broker.new_topic("retry", partitions=3)
    dlq = broker.new_topic("dlq")
    failed = [source_record(orders, 1, 0), source_record(payments, 0, 0)]
    write_dead_letters(broker, dlq, [(r, ValueError()) for r in failed])

    tally = replay(job(broker, dlq, to=retry))

    assert dict(tally.replayed) == {retry: 2}
    back = broker.consume_all(retry, expected=2, timeout=15)
    assert {(m.key(), m.value()) for m in back} == {(r.key, r.value) for r in failed}
    assert all(m.headers() == [*TRACE, (deadletter.REPLAY_COUNT, b"1")] for m in back)
    assert_holds_exactly(broker, orders, 2, 0)
    assert_holds_exactly(broker, payments, 1, 0)


def test_rate_limits_records_per_second(broker: Broker) -> None:
    orders = broker.new_topic("orders")
    dlq = broker.new_topic("dlq")
    write_dead_letters(broker, dlq, [(source_record(orders, 0, o), ValueError()) for o in range(9)])
    started = time.monotonic()

    tally = replay(job(broker, dlq, rate=8.0))  # burst 1: 8 intervals of 1/8 s

    assert tally.total_replayed == 9
    assert time.monotonic() - started >= 1.0


# -- failures: stop, keep what was acknowledged -----------------------------------------------
def test_a_dead_letter_without_source_stops_and_names_it(broker: Broker) -> None:
    orders = broker.new_topic("orders")
    dlq = broker.new_topic("dlq")
    write_dead_letters(broker, dlq, [(source_record(orders, 0, 0), ValueError())])
    write_raw(broker, dlq, b"stray", TRACE)
    write_dead_letters(broker, dlq, [(source_record(orders, 0, 1), ValueError())])
    replay_job = job(broker, dlq)

    with pytest.raises(NoDestination, match=rf"{dlq}\[0\]@1 has no parafka.dlq.topic .*--to"):
        replay(replay_job)

    assert committed(broker, replay_job.group_id, dlq, 1) == {0: 1}  # the first one is done
    assert_holds_exactly(broker, orders, 1, 1)


def test_a_record_the_producer_refuses_stops_the_replay_at_it(broker: Broker) -> None:
    orders = broker.new_topic("orders")
    dlq = broker.new_topic("dlq")
    small, big = source_record(orders, 0, 0), source_record(orders, 0, 1)
    big = Record(orders, 0, 1, big.key, b"x" * 5000, list(TRACE))
    write_dead_letters(broker, dlq, [(small, ValueError()), (big, ValueError())])
    write_dead_letters(broker, dlq, [(source_record(orders, 0, 2), ValueError())])
    limited = job(broker, dlq, group="limited", kafka_config={"message.max.bytes": 2000})

    with pytest.raises(ReplayFailed, match=rf"{dlq}\[0\]@1 to '{orders}' failed"):
        replay(limited)

    assert committed(broker, "limited", dlq, 1) == {0: 1}
    # Run again without the limit: it goes on from the failed record.
    assert replay(job(broker, dlq, group="limited")).total_replayed == 2
    assert_holds_exactly(broker, orders, 1, 3)


def test_a_missing_destination_topic_is_a_usage_error(broker: Broker) -> None:
    dlq = broker.new_topic("dlq")
    gone = f"gone-{os.getpid()}-{time.monotonic_ns()}"
    write_dead_letters(broker, dlq, [(source_record(gone, 0, 0), ValueError())])

    with pytest.raises(ConfigError, match=rf"dead letter {dlq}\[0\]@0, '{gone}' does not exist"):
        replay(job(broker, dlq))
    with pytest.raises(ConfigError, match=r"destination topic \(--to\) 'nope-"):
        Replayer(job(broker, dlq, to=f"nope-{gone}")).run()


# -- the command's errors ---------------------------------------------------------------------
def test_cli_missing_dead_letter_topic_exits_2(broker: Broker) -> None:
    result = run_cli(
        ["dlq", "replay", "--from", "no-such-dlq", "-b", broker.bootstrap_servers],
        cli_env(),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        "parafka: error: the dead-letter topic (--from) 'no-such-dlq' does not exist on "
        f"{broker.bootstrap_servers}: check the name"
    ]
    assert "Traceback" not in result.stderr


def test_cli_unreachable_broker_exits_1_quickly() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli(
        ["dlq", "replay", "--from", "d", "-b", address, "--connect-timeout", "2"],
        cli_env(),
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith(f"parafka: error: cannot reach Kafka at '{address}' within 2 s")
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 20


def test_sigterm_commits_what_was_replayed_and_a_rerun_finishes(
    broker: Broker, tmp_path: Path
) -> None:
    orders = broker.new_topic("orders")
    dlq = broker.new_topic("dlq")
    write_dead_letters(
        broker, dlq, [(source_record(orders, 0, o), ValueError()) for o in range(40)]
    )
    args = ["dlq", "replay", "--from", dlq, "-b", broker.bootstrap_servers, "-g", "slow"]

    with started_cli([*args, "--rate", "10"], cli_env(), tmp_path) as proc:
        assert len(broker.consume_all(orders, expected=5, timeout=15)) == 5  # under way
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    stderr = (tmp_path / "stderr").read_text()
    assert code == 130, stderr
    assert error_lines(stderr) == ["parafka: error: interrupted"]

    done = committed(broker, "slow", dlq, 1)[0]
    assert 5 <= done < 40
    assert (tmp_path / "stdout").read_text().startswith(f"replayed {done} record(s) from {dlq}")
    assert_holds_exactly(broker, orders, 1, done)  # replayed = committed: no loss, no repeat
    rerun = run_cli(args, cli_env(), timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith(f"replayed {40 - done} record(s)")
    messages = broker.consume_all(orders, expected=41, timeout=15)
    values = Counter(m.value() for m in messages if m.value() != b"sentinel")
    assert values == Counter(source_record(orders, 0, o).value for o in range(40))
