"""--retry-topic: the parked record's headers, the fences (pure), the settings, and the
engine parking records and keeping each key's order over the in-memory cluster."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest

from parafka import ConfigError, ParallelConsumer, Record, RecordFailed
from parafka.core.deadletter import header_text
from parafka.core.deserializers import DeserializationError
from parafka.core.entry import QUEUED, RETRY_WAIT, SENDING, SETTLED, Entry
from parafka.core.errors import RecordParked
from parafka.core.ledger import Ledger
from parafka.core.outcomes import Outcome
from parafka.core.parking import (
    BEHIND,
    DUE,
    FAILED,
    FIRST_ERROR,
    REASON,
    Fences,
    due_of,
    origin,
    parked_record,
)
from parafka.core.record import MessageRecord, Produced
from parafka.core.retry import RetryPolicy
from parafka.core.stats import PartitionStats, Stats
from parafka.engine.control import ControlLoop
from parafka.engine.retrytopic import ordered_producer_config
from parafka.engine.settings import Settings
from parafka.executors.base import Work
from parafka.observe.health import HealthPolicy, assess
from parafka.testing import InMemoryCluster
from parafka.testing.memory import VirtualClock
from parafka.testing.memory.log import MemoryMessage
from parafka.testing.sim.executor import SimExecutor
from parafka.testing.sim.loops import virtual_loop
from tests.unit.cli.test_cli_usage import BASE, HANDLER, usage_error


def _record(offset: int = 7, key: bytes = b"k", headers: Any = None) -> MessageRecord:
    message = MemoryMessage("src", 2, offset, key, b"v", headers, 0)
    record = MessageRecord(message, "src", 2, offset)
    record.attempt = 3
    return record


def _headers(produced: Produced) -> list[tuple[str, bytes | None]]:
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in produced[3] or ()]


def test_a_parked_record_says_where_it_came_from_why_and_when_it_is_due() -> None:
    source = _record(headers=[("app", b"1"), ("parafka.retry.due", b"old")])
    parked = parked_record(source, "retry", "g", FAILED, 1000.25, ValueError("boom"))
    topic, value, key, parked_headers = parked
    assert (topic, key, value) == ("retry", b"k", b"v")
    headers = [
        (k, v if isinstance(v, bytes) or v is None else v.encode()) for k, v in parked_headers or ()
    ]
    assert headers[0] == ("app", b"1")  # its own headers kept, old parking headers replaced
    assert [k for k, _ in headers].count(DUE) == 1
    found = origin(headers)
    assert found is not None
    assert (found.topic, found.partition, found.offset, found.attempts) == ("src", 2, 7, 3)
    assert due_of(headers) == found.due == 1000.25
    assert header_text(headers, REASON) == FAILED
    assert header_text(headers, FIRST_ERROR) == "ValueError: boom"
    behind = parked_record(source, "retry", "g", BEHIND, 5.0, None)
    behind_headers = [(k, v if not isinstance(v, str) else v.encode()) for k, v in behind[3] or ()]
    assert header_text(behind_headers, REASON) == BEHIND
    assert header_text(behind_headers, FIRST_ERROR) is None
    assert origin(behind_headers) is not None and origin(behind_headers).attempts == 0  # type: ignore[union-attr]
    assert origin([("x", b"1")]) is None and due_of(None) == 0.0


def test_a_fence_lifts_once_every_write_of_its_key_is_committed_past() -> None:
    fences = Fences()
    tp = ("src", 0)
    fences.written(tp, b"a", 50, 0, 10)
    fences.written(tp, b"a", 52, 0, 4)  # an older write does not lower the fence
    fences.written(tp, b"b", 51, 1, 3)
    fences.written(("src", 1), b"a", 7, 0, 11)
    assert fences.fenced(tp, b"a", 60) and not fences.fenced(tp, b"c", 60) and len(fences) == 3
    assert fences.retry_partitions() == {0, 1}
    assert fences.lift({0: 10, 1: None}) == 0  # committed 10: offset 10 is not done yet
    assert fences.lift({0: 11, 1: 3}) == 1  # a's write at 10 is done
    assert not fences.fenced(tp, b"a", 60) and fences.fenced(tp, b"b", 60)
    assert fences.fenced(("src", 1), b"a", 8)  # its own write at 11 is not
    assert fences.lift({0: 12, 1: 4}) == 2 and len(fences) == 0


def test_a_fence_holds_back_only_from_its_first_parked_record_on() -> None:
    """A record older than the key's first parked one (run again after a crash: its effect
    came before the parked one's) runs ahead of the parked records, as it did."""
    fences = Fences()
    tp = ("src", 0)
    fences.written(tp, b"a", 11, 0, 3)
    fences.written(tp, b"a", 13, 0, 4)
    assert not fences.fenced(tp, b"a", 5)
    assert fences.fenced(tp, b"a", 11) and fences.fenced(tp, b"a", 12)
    fences.written(tp, b"a", 9, 0, 5)  # rebuilt out of order: the lowest origin counts
    assert fences.fenced(tp, b"a", 9) and not fences.fenced(tp, b"a", 8)


def test_fences_are_rebuilt_from_the_retry_topics_records_of_the_partition() -> None:
    def parked(offset: int, key: bytes, source: int, at: int) -> MemoryMessage:
        produced = parked_record(_record(offset, key), "retry", "g", FAILED, 0.0, None)
        headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in produced[3] or ()]
        headers = [
            (k, str(source).encode() if k == "parafka.retry.partition" else v) for k, v in headers
        ]
        return MemoryMessage("retry", 1, at, key, b"v", headers, 0)

    records = [parked(5, b"a", 2, 40), parked(6, b"b", 3, 41), parked(9, b"a", 2, 42)]
    fences = Fences()
    fences.written(("src", 2), b"z", 1, 0, 1)  # forgotten: rebuilt from the topic only
    assert fences.rebuild(("src", 2), records) == 1
    assert fences.fenced(("src", 2), b"a", 5) and not fences.fenced(("src", 2), b"a", 4)
    assert not fences.fenced(("src", 2), b"z", 5)
    assert not fences.lift({1: 42}) and fences.lift({1: 43}) == 1
    fences.rebuild(("src", 3), records)
    fences.forget(("src", 3))
    assert len(fences) == 0


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"retry_topic": "t"}, "also a source topic: drop it from topics"),
        ({"retry_topic": "r", "dead_letter_topic": "r"}, "also the dead-letter or output"),
        ({"retry_topic": "r", "ordering": "partition"}, "use ordering='key'"),
        ({"retry_topic": "no good"}, "not a valid Kafka topic name"),
        ({"retry_topic": "^r.*"}, "name one topic"),
        (
            {"retry_topic": "r", "exactly_once": True, "output_topic": "o"},
            "cannot be combined with exactly_once",
        ),
        ({"retry_topic": "r", "park_attempts": 0}, "park_attempts=0 is invalid"),
        ({"retry_topic": "r", "park_backoff": -1}, "park_backoff=-1 is invalid"),
    ],
)
def test_bad_retry_topic_settings(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings("h:1", "g", ("t",), **overrides)


def test_the_cli_refuses_a_retry_topic_with_partition_ordering(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = usage_error(
        capsys, ["run", HANDLER, *BASE, "--retry-topic", "r", "--ordering", "partition"]
    )
    assert "use ordering='key'" in line


def test_the_cli_refuses_a_bad_park_attempts(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(
        capsys, ["run", HANDLER, *BASE, "--retry-topic", "r", "--park-attempts", "0"]
    )
    assert "--park-attempts" in line


class Flaky:
    """Fails chosen records until their third attempt in all (quick ones and parked ones
    together), and notes each key's successful source offsets in the order they ran."""

    def __init__(self, failing: set[tuple[int, int]]) -> None:
        self.failing = failing
        self.tries: dict[tuple[int, int], int] = defaultdict(int)
        self.done: dict[bytes, list[int]] = defaultdict(list)
        self.from_retry = 0
        self.lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        where = origin(record.headers)
        if record.topic == "retry":
            assert where is not None
            partition, offset = where.partition, where.offset
        else:
            partition, offset = record.partition, record.offset
        with self.lock:
            self.tries[(partition, offset)] += 1
            if (partition, offset) in self.failing and self.tries[(partition, offset)] < 3:
                raise RuntimeError(f"not yet: {partition}@{offset}")
            if record.topic == "retry":
                self.from_retry += 1
            assert record.key is not None
            self.done[record.key].append(partition * 100_000 + offset)


def _cluster(records: int, keys: int) -> tuple[InMemoryCluster, dict[bytes, list[int]]]:
    cluster = InMemoryCluster()
    cluster.create_topic("in", 2)
    cluster.create_topic("retry", 2)
    cluster.create_topic("dlq", 1)
    sent: dict[bytes, list[int]] = defaultdict(list)
    for i in range(records):
        key = b"k%d" % (i % keys)
        partition = i % 2
        offset = i // 2
        cluster.produce("in", b"%d" % i, key=key, partition=partition)
        sent[key].append(partition * 100_000 + offset)
    return cluster, sent


def test_parked_records_and_their_keys_later_records_run_in_order_and_all_finish() -> None:
    cluster, sent = _cluster(400, keys=20)
    failing = {(i % 2, i // 2) for i in range(0, 400, 37)}
    handler = Flaky(failing)
    pc = ParallelConsumer(
        handler,
        bootstrap_servers="memory",
        group_id="g",
        topics="in",
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.01),
        retry_topic="retry",
        park_backoff=0.05,
        dead_letter_topic="dlq",
        concurrency=8,
        commit_interval=0.05,
        kafka=cluster,
    )
    stats = pc.run(until_idle=1.0)
    assert dict(handler.done) == dict(sent)  # every record once, each key in offset order
    assert stats.parked == len(failing)
    assert stats.parked_behind > 0 and handler.from_retry == stats.parked + stats.parked_behind
    assert stats.dead_lettered == 0 and stats.fenced_keys == 0
    for partition in (0, 1):
        assert cluster.committed("g", "in", partition).offset == 200
    assert cluster.end_offset(("dlq", 0)) == 0


def test_a_record_failing_its_parked_attempts_goes_to_the_dead_letter_topic() -> None:
    cluster, _ = _cluster(40, keys=4)
    tries: dict[int, int] = defaultdict(int)

    def handler(record: Record) -> None:
        value = int(record.value or b"0")
        tries[value] += 1
        if value == 5:
            raise RuntimeError("never")

    stats = ParallelConsumer(
        handler,
        bootstrap_servers="memory",
        group_id="g",
        topics="in",
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.01),
        retry_topic="retry",
        park_attempts=2,
        park_backoff=0.02,
        dead_letter_topic="dlq",
        commit_interval=0.05,
        kafka=cluster,
    ).run(until_idle=1.0)
    assert tries[5] == 4  # 2 quick attempts, 2 from the retry topic
    assert stats.dead_lettered == 1 and stats.parked == 1
    (letter,) = cluster.messages("dlq", 0)
    assert letter.value() == b"5"
    headers = letter.headers()
    assert header_text(headers, "parafka.dlq.topic") == "in"  # where it came from, not retry
    assert header_text(headers, "parafka.dlq.offset") == "2"  # value 5: partition 1, offset 2
    assert header_text(headers, "parafka.dlq.partition") == "1"
    assert all(tries[i] >= 1 for i in range(40))


def _ledger() -> tuple[Ledger, list[Entry]]:
    ledger = Ledger(
        "key",
        8,
        RetryPolicy(max_attempts=2, initial_backoff=0.0, jitter=0.0),
        "dead-letter",
        clock=lambda: 0.0,
        retry_topic="retry",
        park_policy=RetryPolicy(max_attempts=3, initial_backoff=1.0, jitter=0.0),
    )
    ledger.assign(("src", 0), 0)
    ledger.accept([MemoryMessage("src", 0, o, b"k%d" % o, b"v", None, 0) for o in range(3)])
    return ledger, [e for run in ledger.take() for e in run]


def test_the_ledger_parks_what_fails_its_retries_and_counts_it_done_when_acknowledged() -> None:
    ledger, (first, stuck, bad) = _ledger()
    error = RuntimeError("down")
    failed: Outcome = (None, error)
    actions = ledger.completed([first], [failed])
    assert not actions.parks and first.state is RETRY_WAIT  # a quick retry first
    ledger.release_due(1.0)
    (again,) = [e for run in ledger.take() for e in run]
    actions = ledger.completed([again], [failed])
    assert actions.parks == [(first, error)] and first.state is SENDING
    actions = ledger.completed([stuck], [(None, RecordParked("hung"))])  # on_stuck="park"
    assert [entry for entry, _ in actions.parks] == [stuck]
    actions = ledger.completed([bad], [(None, DeserializationError("x", ValueError("no")))])
    assert not actions.parks and [entry for entry, _ in actions.letters] == [bad]
    ledger.park_settled(first, None)
    ledger.park_settled(stuck, None)
    assert first.state is SETTLED and stuck.state is SETTLED
    assert ledger.counts.parked == 2 and ledger.parts[("src", 0)].offsets.position == 2


def test_parked_behind_runs_write_one_record_per_key_and_requeue_the_rest() -> None:
    ledger = Ledger("key", 8, RetryPolicy(), retry_topic="retry", clock=lambda: 0.0)
    ledger.scheduler.run_length = 3
    ledger.assign(("src", 0), 0)
    ledger.accept([MemoryMessage("src", 0, o, b"k", b"v", None, 0) for o in range(3)])
    (run,) = ledger.take()
    actions = ledger.park_behind([run])
    assert [entry.offset for entry, cause in actions.parks if cause is None] == [0]
    assert [e.state for e in run] == [SENDING, QUEUED, QUEUED]
    ledger.park_settled(run[0], None)
    assert ledger.counts.parked_behind == 1 and [e.offset for r in ledger.take() for e in r] == [
        1,
        2,
    ]


def _from_retry_topic(attempts: int, reason: str) -> tuple[Ledger, Entry]:
    """A ledger holding one record taken from the retry topic, parked after `attempts`."""
    ledger = Ledger(
        "key",
        8,
        RetryPolicy(max_attempts=3, initial_backoff=0.1, multiplier=2.0, jitter=0.0),
        "dead-letter",
        clock=lambda: 0.0,
        retry_topic="retry",
        park_policy=RetryPolicy(
            max_attempts=2, initial_backoff=10.0, multiplier=4.0, max_backoff=1e9, jitter=0.0
        ),
    )
    ledger.assign(("retry", 0), 0)
    source = _record()
    source.attempt = attempts
    parked = parked_record(source, "retry", "g", reason, 0.0, None)
    message = MemoryMessage("retry", 0, 0, b"k", b"v", _headers(parked), 0)
    ledger.accept([message])
    ((entry,),) = ledger.take()
    return ledger, entry


def _waits(ledger: Ledger, entry: Entry) -> list[float]:
    """The waits between the attempts of `entry` until it is given up."""
    waits = []
    while True:
        actions = ledger.completed([entry], [(None, RuntimeError("still down"))])
        if actions.letters:
            return waits
        assert entry.state is RETRY_WAIT and not actions.parks  # retried in place
        waits.append(entry.due)
        ledger.release_due(entry.due)
        ledger.take()


def test_a_record_from_the_retry_topic_is_retried_in_place_with_growing_waits() -> None:
    ledger, entry = _from_retry_topic(3, FAILED)  # its quick attempts were made
    assert _waits(ledger, entry) == [40.0]  # the first wait (10 s) came before it was read


def test_a_record_parked_behind_gets_its_quick_attempts_first() -> None:
    ledger, entry = _from_retry_topic(0, BEHIND)  # it never ran
    assert _waits(ledger, entry) == [0.1, 0.2, 10.0, 40.0]  # 3 quick attempts, 2 parked


def test_a_retry_topic_partition_waiting_for_a_due_time_is_not_stuck() -> None:
    """A parked record may wait minutes for its due time on purpose: /healthz must not
    fail (and get the pod restarted) for it; a source partition still can be stuck."""
    waiting = PartitionStats("retry", 0, 5, 5, 50, 45, 45, 0, oldest_unfinished=5, oldest_age=250)
    stats = Stats(partitions=(waiting,), at=100.0, membership="assigned", membership_since=1.0)
    policy = HealthPolicy(stuck_after=60.0, patient=frozenset({"retry"}))
    assert assess(stats, 100.0, policy).ok
    assert not assess(stats, 100.0, HealthPolicy(stuck_after=60.0)).ok


def test_the_park_producer_keeps_a_keys_order_whatever_the_users_settings() -> None:
    assert ordered_producer_config({"linger.ms": 5}, {}) == {
        "linger.ms": 5,
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
    }
    limited = ordered_producer_config({"acks": "1"}, {"acks": "1"})
    assert "enable.idempotence" not in limited
    assert limited["max.in.flight.requests.per.connection"] == 1
    off = ordered_producer_config({"enable.idempotence": "false"}, {"enable.idempotence": "false"})
    assert off["max.in.flight.requests.per.connection"] == 1
    many = ordered_producer_config({"max.in.flight.requests.per.connection": "50"}, {})
    assert many["max.in.flight.requests.per.connection"] == 5


def test_a_park_the_retry_topic_refuses_stops_the_consumer_without_committing_it() -> None:
    cluster, _ = _cluster(40, keys=4)
    cluster.faults.fail_deliveries_where(lambda topic, key, value: topic == "retry")

    def handler(record: Record) -> None:
        if record.value == b"5":  # partition 1, offset 2
            raise RuntimeError("down")

    pc = ParallelConsumer(
        handler,
        bootstrap_servers="memory",
        group_id="g",
        topics="in",
        retry=RetryPolicy(max_attempts=1),
        retry_topic="retry",
        dead_letter_topic="dlq",
        commit_interval=0.05,
        kafka=cluster,
    )
    with pytest.raises(RecordFailed, match="parking it on the retry topic 'retry' failed"):
        pc.run(until_idle=1.0)
    assert (cluster.committed("g", "in", 1).offset or 0) <= 2
    assert cluster.end_offset(("retry", 0)) + cluster.end_offset(("retry", 1)) == 0


def test_after_a_crash_a_record_older_than_its_keys_parked_one_keeps_its_place() -> None:
    """Offset 0 of key k ran, offset 1 failed and was parked, offset 2 went behind it; the
    consumer dies before committing any of it. Its successor runs offset 0 again (it is
    older than the parked record: its effect came first) and parks 1 and 2 behind the
    parked ones: the last run of each record is in offset order."""
    clock = VirtualClock()
    cluster = InMemoryCluster(clock)
    cluster.create_topic("in", 1)
    cluster.create_topic("retry", 1)
    for value in (b"ok", b"fail", b"ok"):
        cluster.produce("in", value, key=b"k", partition=0)
    runs: list[tuple[str, int]] = []  # (consumer, source offset) of each success

    def join(name: str) -> tuple[ControlLoop, SimExecutor]:
        def handle(record: Record) -> None:
            found = origin(record.headers)
            offset = found.offset if found is not None else record.offset
            if record.value == b"fail" and found is None:
                raise RuntimeError("down")
            runs.append((name, offset))

        executor = SimExecutor(capacity=4, run_length=1)
        settings = Settings(
            "memory",
            "g",
            ("in",),
            retry=RetryPolicy(max_attempts=1),
            retry_topic="retry",
            park_backoff=30.0,
            commit_interval=1000.0 if name == "a" else 0.2,
        )
        return virtual_loop(settings, Work(handle), executor, cluster, clock), executor

    def step(loop: ControlLoop, executor: SimExecutor, seconds: float) -> None:
        end = clock() + seconds
        while clock() < end:
            loop.step()
            while executor.pending:
                executor.run(0)
            clock.advance(0.01)

    a, a_executor = join("a")
    step(a, a_executor, 5.0)
    assert runs == [("a", 0)] and cluster.end_offset(("retry", 0)) == 2  # 1 parked, 2 behind
    assert cluster.committed("g", "in", 0).offset is None
    cluster.crash(a.consumer)  # type: ignore[arg-type]
    b, b_executor = join("b")
    step(b, b_executor, 60.0)
    assert runs[:2] == [("a", 0), ("b", 0)]  # offset 0 again, in its place, not parked
    last = {offset: position for position, (_, offset) in enumerate(runs)}
    assert sorted(last) == [0, 1, 2] and last[0] < last[1] < last[2]
    assert cluster.committed("g", "in", 0).offset == 3
