"""The control plane end to end on the local broker: each action through the dashboard's
HTTP API on a running consumer (pause, resume, skip, park, replay), each refused without
the token or with a wrong one, and refusals of records the consumer does not hold."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from parafka import ParallelConsumer, Record
from parafka.cli.views.web import Dashboard
from parafka.core.deadletter import header_text
from parafka.core.retry import RetryPolicy
from parafka.testing import LocalBroker

from .helpers import committed, consumer, wait_until

TOKEN = "integration-control-token"


def post(
    dashboard: Dashboard, action: str, body: dict[str, Any], token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"{dashboard.url}api/control/{action}",
        data=json.dumps(body).encode(),
        method="POST",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stats_json(dashboard: Dashboard) -> dict[str, Any]:
    with urllib.request.urlopen(f"{dashboard.url}api/stats", timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def refused_without_the_token(dashboard: Dashboard, action: str, body: dict[str, Any]) -> None:
    for token in (None, "wrong-token-for-this-test"):
        status, answer = post(dashboard, action, body, token)
        assert status == 401 and answer["result"] == "denied", (token, answer)


class Gate:
    """Holds the handler on chosen records until `open()`; remembers what finished."""

    def __init__(self, hold: set[tuple[int, int]]) -> None:
        self.hold = hold
        self.reached = threading.Event()
        self.released = threading.Event()
        self.done: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        if (record.partition, record.offset) in self.hold:
            self.reached.set()
            self.released.wait(60)
        with self._lock:
            self.done.append((record.partition, record.offset))

    def finished(self, partition: int) -> list[int]:
        with self._lock:
            return [o for p, o in self.done if p == partition]


@pytest.fixture
def group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running() -> Iterator[list[ParallelConsumer]]:
    started: list[ParallelConsumer] = []
    yield started
    for pc in started:
        pc.stop(drain=False)
        pc.join(30)


def start(pc: ParallelConsumer, running: list[ParallelConsumer], partitions: int) -> Dashboard:
    running.append(pc.start())
    wait_until(lambda: len(pc.stats().partitions) == partitions, 30, "the assignment")
    return Dashboard(pc, port=0, control_token=TOKEN, sample_every=0.2).start()


def test_pause_holds_a_partition_and_resume_lets_it_flow(
    broker: LocalBroker, group: str, running: list[ParallelConsumer]
) -> None:
    topic = broker.new_topic(partitions=2)
    gate = Gate(set())
    pc = consumer(broker, gate, topic, group, ordering="partition", concurrency=4)
    dashboard = start(pc, running, 2)
    try:
        where = {"topic": topic, "partition": 0}
        refused_without_the_token(dashboard, "pause", where)
        status, answer = post(dashboard, "pause", where)
        assert status == 200 and answer["result"] == "ok", answer
        wait_until(lambda: pc.stats().user_paused == ((topic, 0),), 5, "the pause in the stats")
        broker.produce(topic, [(None, b"%d" % i) for i in range(20)], partition=0)
        broker.produce(topic, [(None, b"%d" % i) for i in range(20)], partition=1)
        wait_until(lambda: len(gate.finished(1)) == 20, 30, "partition 1's records")
        assert gate.finished(0) == []  # paused: nothing of it was fetched

        def paused_on_the_page() -> dict[int, bool]:
            return {p["partition"]: p["paused"] for p in stats_json(dashboard)["partitions"]}

        wait_until(lambda: paused_on_the_page() == {0: True, 1: False}, 5, "the page's pause")
        refused_without_the_token(dashboard, "resume", where)
        assert pc.stats().user_paused == ((topic, 0),)  # still paused
        status, answer = post(dashboard, "resume", where)
        assert status == 200 and answer["message"].endswith("resumed"), answer
        wait_until(lambda: len(gate.finished(0)) == 20, 30, "partition 0's records after resume")
        status, answer = post(dashboard, "resume", where)
        assert status == 409 and "no operator paused it" in answer["message"]
        status, answer = post(dashboard, "pause", {"topic": topic, "partition": 7})
        assert status == 409 and "not assigned to this consumer" in answer["message"]
        actions = stats_json(dashboard)["control"]["actions"]
        assert [(a["action"], a["result"]) for a in actions[:3]] == [
            ("pause", "refused"),
            ("resume", "refused"),
            ("resume", "ok"),
        ]
        assert len(actions) == 8
        wait_until(lambda: ("pause", "denied", 2) in pc.stats().control_actions, 5, "the counts")
        assert ("pause", "ok", 1) in pc.stats().control_actions
    finally:
        dashboard.stop()


def test_skip_a_stuck_record_commits_past_it_and_ignores_its_outcome(
    broker: LocalBroker, group: str, running: list[ParallelConsumer]
) -> None:
    topic = broker.new_topic(partitions=1)
    gate = Gate({(0, 3)})
    pc = consumer(
        broker, gate, topic, group, ordering="partition", concurrency=2, commit_interval=0.2
    )
    dashboard = start(pc, running, 1)
    try:
        broker.produce(topic, [(None, b"%d" % i) for i in range(10)])
        assert gate.reached.wait(30)
        stuck = {"topic": topic, "partition": 0, "offset": 3}
        refused_without_the_token(dashboard, "skip", stuck)
        status, answer = post(dashboard, "park", stuck)
        assert status == 409 and "no dead-letter topic" in answer["message"], answer
        status, answer = post(dashboard, "skip", stuck)
        assert status == 200 and "outcome will be ignored" in answer["message"], answer
        wait_until(lambda: gate.finished(0) == [0, 1, 2, 4, 5, 6, 7, 8, 9], 30, "the rest")
        wait_until(lambda: committed(broker, group, topic, 1)[0] == 10, 30, "commit past 3")
        status, answer = post(dashboard, "skip", stuck)
        assert status == 409 and "does not hold it" in answer["message"], answer
        gate.released.set()  # the handler returns at last: its outcome is ignored
        wait_until(lambda: (0, 3) in gate.done, 5, "the stuck handler to return")
        returned = time.monotonic()
        wait_until(lambda: pc.stats().at > returned + 0.5, 5, "a later snapshot")
        stats = pc.stats()
        assert stats.skipped_by_operator == 1 and stats.processed == 9  # not 10
        assert stats.in_flight == 0 and stats.queued == 0
    finally:
        gate.released.set()
        dashboard.stop()


class FailsOnce:
    """Fails for good on offset 2 of each partition, unless it is a replayed copy."""

    def __init__(self) -> None:
        self.done: list[tuple[int, int, bytes | None]] = []

    def __call__(self, record: Record) -> None:
        if record.offset == 2 and header_text(record.headers, "parafka.replay.count") is None:
            raise ValueError(f"cannot handle {record.partition}/{record.offset}")
        self.done.append((record.partition, record.offset, record.value))


def test_park_and_skip_retrying_records_then_replay_the_parked_one(
    broker: LocalBroker, group: str, running: list[ParallelConsumer]
) -> None:
    topic = broker.new_topic(partitions=2)
    dead = broker.new_topic(partitions=1)
    handler = FailsOnce()
    pc = consumer(
        broker,
        handler,
        topic,
        group,
        ordering="partition",
        retry=RetryPolicy(max_attempts=10, initial_backoff=60.0, max_backoff=60.0),
        dead_letter_topic=dead,
        commit_interval=0.2,
    )
    dashboard = start(pc, running, 2)
    try:
        for partition in (0, 1):
            values = [(None, b"p%d-%d" % (partition, i)) for i in range(5)]
            broker.produce(topic, values, partition=partition)
        wait_until(lambda: pc.stats().waiting_retry == 2, 30, "both records retrying")
        parked = {"topic": topic, "partition": 0, "offset": 2}
        skipped = {"topic": topic, "partition": 1, "offset": 2}
        refused_without_the_token(dashboard, "park", parked)
        status, answer = post(dashboard, "park", parked)
        assert status == 200 and "parked (retry-wait)" in answer["message"], answer
        status, answer = post(dashboard, "skip", skipped)
        assert status == 200 and "skipped (retry-wait)" in answer["message"], answer
        wait_until(lambda: committed(broker, group, topic, 2) == {0: 5, 1: 5}, 30, "commits")
        (letter,) = broker.consume_all(dead, expected=1)
        headers = letter.headers() or []
        assert header_text(headers, "parafka.dlq.offset") == "2"
        assert header_text(headers, "parafka.dlq.exception") == "parafka.errors.ParkedByOperator"
        listed = stats_json(dashboard)["dead_letters"]
        assert [(e["partition"], e["offset"]) for e in listed] == [(0, 2)]
        assert listed[0]["headers"]["parafka.dlq.group"] == group  # provenance on the page

        replay = {"records": [parked]}
        refused_without_the_token(dashboard, "replay", replay)
        status, answer = post(dashboard, "replay", replay)
        assert status == 200 and answer["message"].startswith("replayed"), answer
        wait_until(lambda: (0, 5, b"p0-2") in handler.done, 30, "the replayed copy processed")
        status, answer = post(dashboard, "replay", replay)
        assert status == 409 and "nothing new" in answer["message"], answer
        assert (1, 2, b"p1-2") not in handler.done  # skipped, never handled
        stats = pc.stats()
        assert stats.skipped_by_operator == 1 and stats.dead_lettered == 1
    finally:
        dashboard.stop()


class FailsOnSource:
    """Fails for good on offset 2 of the source topic; anything from the retry topic passes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.done: list[tuple[str, bytes | None]] = []
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        if record.topic == self.source and record.offset == 2:
            raise ValueError("cannot handle it here")
        with self._lock:
            self.done.append((record.topic, record.value))


def test_park_with_a_retry_topic_parks_there_and_fences_the_key(
    broker: LocalBroker, group: str, running: list[ParallelConsumer]
) -> None:
    topic, retry = broker.new_topic(partitions=1), broker.new_topic(partitions=1)
    handler = FailsOnSource(topic)
    pc = consumer(
        broker,
        handler,
        topic,
        group,
        ordering="key",
        retry=RetryPolicy(max_attempts=10, initial_backoff=60.0, max_backoff=60.0),
        retry_topic=retry,
        park_backoff=0.2,
        commit_interval=0.2,
    )
    dashboard = start(pc, running, 2)
    try:
        broker.produce(topic, [(b"a", b"a%d" % i) for i in range(5)], partition=0)
        wait_until(lambda: pc.stats().waiting_retry == 1, 30, "offset 2 retrying")
        status, answer = post(dashboard, "park", {"topic": topic, "partition": 0, "offset": 2})
        assert status == 200 and f"sent to {retry}" in answer["message"], answer
        wait_until(lambda: len(handler.done) == 5, 30, "every record, the parked one from T")
        wait_until(lambda: committed(broker, group, topic, 1) == {0: 5}, 30, "the source commit")
        assert [value for _, value in handler.done] == [b"a0", b"a1", b"a2", b"a3", b"a4"]
        assert [t for t, _ in handler.done] == [topic, topic, retry, retry, retry]
        (parked, *behind) = broker.consume_all(retry, expected=3)
        first_error = header_text(parked.headers() or [], "parafka.retry.first-error") or ""
        assert first_error.startswith("parafka.errors.ParkedByOperator")
        assert [header_text(m.headers() or [], "parafka.retry.reason") for m in behind] == [
            "behind",
            "behind",
        ]
        wait_until(lambda: pc.stats().parked == 1, 10, "the parked count")
    finally:
        dashboard.stop()
