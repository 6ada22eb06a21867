"""`dlq replay`, the I/O shell: read a dead-letter topic up to its end, republish what the
filters select, and commit the group's progress only past acknowledged records.

The rules (filters, destinations, group name) are pure and live in `redrive.py`; this
module only moves records. A finite job: each partition is read from the group's committed
offset to the end it had when the replay first fetched from it, never waiting for more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from parafka.core.deadletter import replayed_headers
from parafka.core.errors import BrokerUnreachable, ConfigError, ParafkaError, wire_name
from parafka.core.offsets import PartitionOffsets
from parafka.core.options import default
from parafka.core.ratelimit import TokenBucket
from parafka.core.record import Headers
from parafka.dlq.redrive import Selection, Tally, default_group, destination, destination_partition
from parafka.kafka.config import consumer_config, kafka_error_text, producer_config
from parafka.kafka.logs import client_logger

# A group's coordinator that is moving or loading: ask again.
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)

log = logging.getLogger(__name__)

FETCH_BATCH = 500


@wire_name("parafka.replay.ReplayFailed")
class ReplayFailed(ParafkaError):
    """A record could not be replayed, or progress could not be committed."""


@dataclass(frozen=True)
class ReplayJob:
    """What to replay, from where to where, how fast."""

    bootstrap_servers: str
    dlq_topic: str
    to: str | None = None  # None: each record back to its parafka.dlq.topic
    selection: Selection = field(default_factory=Selection)
    rate: float | None = None  # records per second; None: as fast as possible
    group: str | None = None  # None: default_group(...)
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    connect_timeout: float = default("connect_timeout")
    commit_interval: float = default("commit_interval")

    @property
    def group_id(self) -> str:
        if self.group is not None:
            return self.group
        return default_group(self.dlq_topic, self.to, self.selection)


class Progress(NamedTuple):
    """How far a replay is: records read of the total known so far, and what it did."""

    read: int
    total: int  # records between start and end of the partitions whose end is known
    ends_known: bool  # False while some partition has not reported its end yet
    tally: Tally


@dataclass
class _Partition:
    offsets: PartitionOffsets
    start: int | None  # the first offset to read; None: the log start, learnt on arrival
    end: int | None = None  # the end offset seen at the first fetch
    done: bool = False


class Replayer:
    """One run of a replay job. `run()` returns the tally or raises:
    ConfigError (bad input), BrokerUnreachable / ReplayFailed / KafkaException (Kafka)."""

    def __init__(
        self,
        job: ReplayJob,
        on_progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if job.to is not None and job.to == job.dlq_topic:
            raise ConfigError(
                f"--to {job.to!r} is the dead-letter topic itself: name the topic to replay into"
            )
        self.job = job
        self.group = job.group_id
        self.tally = Tally()
        self.clock = clock
        self._on_progress = on_progress
        self._bucket = TokenBucket(job.rate, clock=clock) if job.rate else None
        # Rate-limited, a batch holds about a second's worth, so progress is committed often.
        self._batch = FETCH_BATCH if job.rate is None else max(1, min(FETCH_BATCH, int(job.rate)))
        self._parts: dict[int, _Partition] = {}
        self._read = 0
        self._failure: ReplayFailed | None = None
        self._stopping = False  # stop(): read no more
        self._abandon = False  # stop(wait=False): wait for no more acknowledgements
        self._topic_partitions: dict[str, int] = {}  # destination topic → partition count
        user = job.kafka_config
        config = consumer_config(job.bootstrap_servers, self.group, user)
        # The end of each partition is reported as an event; reading starts where the
        # group left off (or at the log start when the group has no offset there).
        config.update({"enable.partition.eof": True, "auto.offset.reset": "earliest"})
        # At the end of a partition the broker holds the fetch this long before the client
        # can see the end (500 ms by default); the replay stops there, so keep it short.
        config.setdefault("fetch.wait.max.ms", 100)
        self._consumer_config = config
        producer = producer_config(job.bootstrap_servers, user)
        producer["enable.idempotence"] = True  # no duplicate or reordering from retries
        self._producer_config = producer
        self._consumer: Any = None
        self._producer: Any = None

    # -- the job ------------------------------------------------------------------------
    def stop(self, wait: bool = True) -> None:
        """Stop reading; what was acknowledged is committed and `run()` returns with
        `stopped` set. wait=False also stops waiting for acknowledgements. Only sets flags:
        safe from a signal handler or another thread."""
        self._stopping = True
        if not wait:
            self._abandon = True

    @property
    def stopped(self) -> bool:
        """True when `stop()` ended the run before the end of the dead-letter topic."""
        return self._stopping

    def run(self) -> Tally:
        """Replay once, to the end; returns the tally (the summary of what was done)."""
        if self._consumer is not None:
            raise RuntimeError("this Replayer already ran; create a new one")
        self._consumer = Consumer(self._consumer_config, logger=client_logger())
        try:
            # Connecting the producer first lets it get its producer id (idempotence) while
            # the consumer starts; otherwise its first records waited about a second on
            # the local broker.
            self._producer = Producer(self._producer_config, logger=client_logger())
            self._metadata(self._producer, None)
            self._start()
            try:
                self._loop()
            except BaseException:
                self._settle_quietly()
                self._log_stopped()
                raise
            self._settle()
            self._report()
            if self._failure is not None or self._stopping:
                self._log_stopped()
            if self._failure is not None:
                raise self._failure
            return self.tally
        finally:
            self._consumer.close()

    def _log_stopped(self) -> None:
        tally = self.tally
        log.warning(
            "stopped after replaying %d record(s) (%d filtered out)",
            tally.total_replayed,
            tally.filtered,
        )

    def _committed(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets. A retriable answer (a coordinator that moved or
        is still loading, as Apache Kafka gives to a new group) is asked again until
        connect_timeout."""
        timeout = self.job.connect_timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                committed: list[TopicPartition] = self._consumer.committed(tps, timeout=timeout)
                return committed
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _COORDINATOR_MOVING
                )
                if not retriable or time.monotonic() >= deadline:
                    raise ReplayFailed(
                        f"reading the committed offsets of group {self.group!r} failed: "
                        f"{kafka_error_text(exc)}"
                    ) from None
                log.debug("reading committed offsets: %s; asking again", kafka_error_text(exc))
                time.sleep(0.2)

    def _start(self) -> None:
        """Check the topics, read the group's offsets and assign every partition."""
        job = self.job
        partitions = self._partition_count(
            job.dlq_topic, "the dead-letter topic (--from)", "check the name"
        )
        if job.to is not None:
            self._partition_count(job.to, "the destination topic (--to)", "create it or fix --to")
        tps = [TopicPartition(job.dlq_topic, p) for p in range(partitions)]
        committed = self._committed(tps)
        assigned = []
        for tp in committed:
            start = tp.offset if tp.offset >= 0 else None
            self._parts[tp.partition] = _Partition(PartitionOffsets(start), start)
            assigned.append(
                TopicPartition(
                    job.dlq_topic, tp.partition, OFFSET_BEGINNING if start is None else start
                )
            )
        log.info(
            "replaying %s (%d partition(s)) in group %s from %s",
            job.dlq_topic,
            partitions,
            self.group,
            ", ".join(f"[{tp.partition}]@{_offset_name(tp.offset)}" for tp in assigned),
        )
        self._consumer.assign(assigned)

    def _loop(self) -> None:
        last_commit = self.clock()
        while not self._interrupted() and not all(p.done for p in self._parts.values()):
            for message in self._fetch():
                self._handle(message)
                if self._interrupted():
                    break
            self._producer.poll(0)
            if self.clock() - last_commit >= self.job.commit_interval:
                self._commit()
                last_commit = self.clock()
            self._report()

    def _interrupted(self) -> bool:
        return self._failure is not None or self._stopping

    def _fetch(self) -> list[Message]:
        """Up to a batch of records; returns on the first one (or after 0.2 s of none)."""
        first = self._consumer.poll(0.2)
        if first is None:
            return []
        return [first, *self._consumer.consume(self._batch - 1, 0)] if self._batch > 1 else [first]

    # -- one record -----------------------------------------------------------------------
    def _handle(self, message: Message) -> None:
        error = message.error()
        partition, offset = message.partition(), message.offset()
        if error is not None:
            self._on_event(error, partition, offset)
            return
        assert partition is not None and offset is not None
        part = self._parts[partition]
        if part.done:
            return
        if part.end is None:
            self._learn_end(part, partition, offset)
        if part.end is not None and offset >= part.end:  # appended after the start
            self._finish_partition(partition, part)
            return
        part.offsets.receive(offset)
        self._read += 1
        headers = _headers(message)
        if self.job.selection.matches(headers):
            self._send(message, headers, partition, offset)
        else:
            part.offsets.finish(offset)
            self.tally.filtered += 1
        if part.end is not None and offset >= part.end - 1:
            self._finish_partition(partition, part)

    def _on_event(self, error: KafkaError, partition: int | None, offset: int | None) -> None:
        if error.code() == KafkaError._PARTITION_EOF and partition is not None:
            part = self._parts[partition]
            if part.end is None and offset is not None:
                part.end = offset
                if part.start is None:
                    part.start = offset
            self._finish_partition(partition, part)
        elif error.fatal():
            raise KafkaException(error)
        else:  # the client retries by itself
            log.warning("kafka: %s", error.str())

    def _learn_end(self, part: _Partition, partition: int, offset: int) -> None:
        """The end is the high watermark of the fetch that brought the first record. (The
        local test broker's ListOffsets answer lags the log end; its fetch answer does not.)"""
        tp = TopicPartition(self.job.dlq_topic, partition)
        _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
        part.end = high if high is not None and high >= 0 else None  # None: stop at EOF
        if part.start is None:
            part.start = offset

    def _finish_partition(self, partition: int, part: _Partition) -> None:
        part.done = True
        self._consumer.pause([TopicPartition(self.job.dlq_topic, partition)])

    def _send(self, message: Message, headers: Headers | None, partition: int, offset: int) -> None:
        """Produce one dead letter back; its offset is finished when the broker acknowledges."""
        where = f"{self.job.dlq_topic}[{partition}]@{offset}"
        wanted = destination(headers, self.job.to, where)
        count = self._partition_count(
            wanted.topic,
            f"the source topic of dead letter {where},",
            "create it or pass --to TOPIC",
        )
        target = destination_partition(wanted, count)
        if not self._wait_for_rate():
            return  # stopped while waiting: not sent, so not committed

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._fail(where, wanted.topic, err.str())
                return
            self._parts[partition].offsets.finish(offset)
            self.tally.replayed[wanted.topic] += 1

        while True:
            try:
                self._producer.produce(
                    wanted.topic,
                    message.value(),
                    message.key(),
                    partition=-1 if target is None else target,
                    headers=replayed_headers(headers),
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._fail(where, wanted.topic, kafka_error_text(exc))
                return

    def _wait_for_rate(self) -> bool:
        """Wait for the rate limit's permission; False when stopped meanwhile."""
        if self._bucket is None:
            return True
        deadline = self.clock() + self._bucket.reserve()
        while (left := deadline - self.clock()) > 0:
            if self._stopping:
                return False
            self._producer.poll(min(left, 0.1))  # serve deliveries while waiting
        return True

    def _fail(self, where: str, topic: str, why: str) -> None:
        if self._failure is None:
            self._failure = ReplayFailed(
                f"replaying dead letter {where} to {topic!r} failed: {why}; progress is "
                f"committed up to it, so the next run of group {self.group!r} starts there"
            )

    # -- metadata, commits, progress --------------------------------------------------------
    def _partition_count(self, topic: str, what: str, fix: str) -> int:
        """The partition count of `topic`; a ConfigError saying `what` it is and how to
        `fix` it when it does not exist. The consumer asks: a producer's metadata request
        can create the topic."""
        known = self._topic_partitions.get(topic)
        if known is not None:
            return known
        job = self.job
        found = self._metadata(self._consumer, topic).topics.get(topic)
        error = found.error if found is not None else None
        if found is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            raise ConfigError(f"{what} {topic!r} does not exist on {job.bootstrap_servers}: {fix}")
        if error is not None:
            raise ReplayFailed(f"cannot use topic {topic!r}: {error.str()}")
        self._topic_partitions[topic] = len(found.partitions)
        return len(found.partitions)

    def _metadata(self, client: Consumer | Producer, topic: str | None) -> Any:
        """Cluster metadata (of one topic, or all); BrokerUnreachable when none comes."""
        job = self.job
        try:
            return client.list_topics(topic, timeout=job.connect_timeout)
        except KafkaException as exc:
            raise BrokerUnreachable(
                f"cannot reach Kafka at {job.bootstrap_servers!r} within "
                f"{job.connect_timeout:g} s ({kafka_error_text(exc)}): check --bootstrap-servers "
                "and that the broker is running, or raise --connect-timeout"
            ) from None

    def _commit(self) -> None:
        """Commit, for each partition that moved, the lowest offset not yet acknowledged."""
        offsets = []
        for partition, part in self._parts.items():
            position = part.offsets.position
            if part.offsets.needs_commit() and position is not None:
                offsets.append(TopicPartition(self.job.dlq_topic, partition, position))
        if not offsets:
            return
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ReplayFailed(
                f"committing the progress of group {self.group!r} failed: {kafka_error_text(exc)}; "
                "records replayed since the last commit will be replayed again by the next run"
            ) from None
        for tp in result or offsets:
            if tp.error is not None:
                raise ReplayFailed(
                    f"committing the progress of group {self.group!r} on partition "
                    f"{tp.partition} failed: {tp.error.str()}"
                )
            self._parts[tp.partition].offsets.mark_committed(tp.offset)

    def _settle(self) -> None:
        """Wait for every delivery report, then commit what they acknowledged."""
        while self._producer is not None and self._producer.flush(0.5) > 0:
            if self._abandon:
                log.warning("not waiting for %d unacknowledged record(s)", len(self._producer))
                break
        self._commit()

    def _settle_quietly(self) -> None:
        """`_settle` while another error is on its way out: that error is what matters."""
        try:
            self._settle()
        except Exception as exc:
            log.warning("could not commit the replay progress: %s", exc)

    def _report(self) -> None:
        if self._on_progress is None:
            return
        parts = self._parts.values()
        total = sum(
            max(0, p.end - p.start) for p in parts if p.end is not None and p.start is not None
        )
        known = all(p.end is not None or p.done for p in parts)
        self._on_progress(Progress(self._read, total, known, self.tally))


def replay(job: ReplayJob, on_progress: Callable[[Progress], None] | None = None) -> Tally:
    """Run `job` to the end of the dead-letter topic; returns what was replayed."""
    return Replayer(job, on_progress).run()


def _headers(message: Message) -> Headers | None:
    """A consumed record's headers (the client gives a list of (str, bytes | None))."""
    return cast("Headers | None", message.headers())


def _offset_name(offset: int) -> str:
    return "start" if offset == OFFSET_BEGINNING else str(offset)
