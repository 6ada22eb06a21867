"""The seam's production implementation: confluent-kafka (librdkafka) behind `parafka.core.seam`.

Thin by design: each method converts parafka's plain types to the client's and back, and
turns `KafkaException`/`KafkaError` into `ClientError`. The engine imports nothing from
confluent_kafka; everything it needs of the client passes through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import confluent_kafka as ck

from parafka.core.record import Produced
from parafka.core.seam import (
    TP,
    Ack,
    AckCallback,
    ClientError,
    CommitResult,
    ConsumerEvents,
    DeliveryCallback,
    FailedCallback,
    Message,
    Offset,
    OutHeaders,
    ShareMessage,
)
from parafka.kafka.logs import client_logger


def client_error(error: ck.KafkaError | ck.KafkaException | BaseException) -> ClientError:
    """The seam's error for a client error (or an exception carrying one)."""
    if isinstance(error, ck.KafkaException) and error.args:
        cause = error.args[0]
        if isinstance(cause, ck.KafkaError):
            error = cause
    if isinstance(error, ck.KafkaError):
        return ClientError(
            error.str(),
            error.name(),
            fatal=error.fatal(),
            retriable=error.retriable(),
            txn_requires_abort=error.txn_requires_abort(),
        )
    return ClientError(str(error))


def _close(consumer: ck.Consumer | ck.ShareConsumer) -> None:
    try:
        consumer.close()
    except ck.KafkaException as exc:
        raise client_error(exc) from None


def _tp(tp: TP, offset: int | None = None, metadata: str | None = None) -> ck.TopicPartition:
    if offset is None:
        return ck.TopicPartition(tp[0], tp[1])
    if metadata:
        return ck.TopicPartition(tp[0], tp[1], offset, metadata=metadata)
    return ck.TopicPartition(tp[0], tp[1], offset)


def _offset(tp: ck.TopicPartition) -> Offset:
    offset = tp.offset if tp.offset is not None and tp.offset >= 0 else None
    return Offset(tp.topic, tp.partition, offset, tp.metadata or "")


def _tps(partitions: Iterable[ck.TopicPartition]) -> list[TP]:
    return [(p.topic, p.partition) for p in partitions]


def _names(partitions: Iterable[TP]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in partitions)


READ_TAIL = 0.5  # seconds read() waits past the reported end for records it does not show


class ConfluentConsumer:
    """A `seam.Consumer` over `confluent_kafka.Consumer`."""

    def __init__(self, config: Mapping[str, Any], events: ConsumerEvents) -> None:
        self._events = events
        conf = dict(config)
        self._config = dict(config)  # for read()'s own short-lived consumer
        conf["on_commit"] = self._on_commit
        conf["error_cb"] = self._on_error
        conf["logger"] = client_logger()
        self._consumer = ck.Consumer(conf)

    # -- callbacks ---------------------------------------------------------------------
    def _on_commit(self, err: ck.KafkaError | None, partitions: list[ck.TopicPartition]) -> None:
        self._events.on_commit(self._results(err, partitions))

    @staticmethod
    def _results(
        err: ck.KafkaError | None, partitions: list[ck.TopicPartition]
    ) -> list[CommitResult]:
        whole = None if err is None else client_error(err)
        return [
            CommitResult(_offset(p), whole or (client_error(p.error) if p.error else None))
            for p in partitions
        ]

    def _on_error(self, err: ck.KafkaError) -> None:
        self._events.on_error(client_error(err))

    # -- the seam ----------------------------------------------------------------------
    def topics(self, timeout: float) -> set[str]:
        try:
            return set(self._consumer.list_topics(timeout=timeout).topics)
        except ck.KafkaException as exc:
            raise client_error(exc) from None

    def subscribe(self, topics: Sequence[str]) -> None:
        events = self._events
        self._consumer.subscribe(
            list(topics),
            on_assign=lambda _c, ps: events.on_assign(_tps(ps)),
            on_revoke=lambda _c, ps: events.on_revoke(_tps(ps)),
            on_lost=lambda _c, ps: events.on_lost(_tps(ps)),
        )

    def consume(self, max_records: int, timeout: float) -> list[Message]:
        consumer = self._consumer
        # consume(n, timeout) waits for n records or the whole timeout; poll() returns on
        # the first one, so a lone record is not held back.
        if timeout > 0:
            first = consumer.poll(timeout)
            if first is None:
                return []
            messages = (
                [first, *consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
            )
        else:
            messages = consumer.consume(max_records, 0)
        good: list[Any] = [message for message in messages if message.error() is None]
        if len(good) < len(messages):
            for message in messages:
                if message.error() is not None:
                    self._good(message)  # reports it (or raises a fatal one)
        return good

    def _good(self, message: Any) -> bool:
        """True for a record; client errors that come as messages are reported instead."""
        error = message.error()
        if error is None:
            return True
        if error.code() == ck.KafkaError._PARTITION_EOF:
            return False
        if error.fatal():
            raise client_error(error)
        self._events.on_error(client_error(error))
        return False

    def commit(self, offsets: Sequence[Offset], asynchronous: bool) -> None:
        tps = [_tp((o.topic, o.partition), o.offset, o.metadata) for o in offsets]
        try:
            if asynchronous:
                self._consumer.commit(offsets=tps, asynchronous=True)
                return
            result = self._consumer.commit(offsets=tps, asynchronous=False)
        except ck.KafkaException as exc:
            raise client_error(exc) from None
        if result is not None:
            self._events.on_commit(self._results(None, result))

    def committed(self, partitions: Sequence[TP], timeout: float) -> list[Offset]:
        try:
            found = self._consumer.committed([_tp(tp) for tp in partitions], timeout=timeout)
        except ck.KafkaException as exc:
            raise client_error(exc) from None
        return [_offset(p) for p in found]

    def read(self, starts: Mapping[TP, int], timeout: float) -> list[Message]:
        # A consumer of its own, assigned (not subscribed: it joins no group and commits
        # nothing), so this one's fetch positions are left alone. It reads each partition
        # to its high watermark, then until nothing more comes for READ_TAIL seconds: the
        # local broker reports a watermark that can lag its log (docs/architecture.md).
        if not starts:
            return []
        reader = ck.Consumer(
            {**self._config, "auto.offset.reset": "latest", "logger": client_logger()}
        )
        deadline = time.monotonic() + timeout
        try:
            ends, assigned = {}, []
            for tp, start in starts.items():
                low, high = reader.get_watermark_offsets(_tp(tp), timeout=timeout)
                ends[tp] = high
                assigned.append(_tp(tp, max(start, low)))
            reader.assign(assigned)
            # Where each partition has been read up to; a partition is read to its end
            # once that reaches its high watermark as a fetch response gave it (cached:
            # the one asked for before assigning can be stale on the local broker, and a
            # first fetch on a busy machine can take longer than READ_TAIL).
            upto, heard = dict(starts), set[TP]()
            found: list[Message] = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClientError(
                        f"reading {_names(starts)} to their end took over {timeout:g} s",
                        "_TIMED_OUT",
                        retriable=True,
                    )
                for tp in starts.keys() - heard:
                    high = reader.get_watermark_offsets(_tp(tp), cached=True)[1]
                    if high is not None and high >= 0:
                        heard.add(tp)
                        ends[tp] = max(ends[tp], high)
                done = len(heard) == len(starts) and all(upto[tp] >= ends[tp] for tp in starts)
                batch: list[Any] = []
                for m in reader.consume(1000, min(left, READ_TAIL if done else 0.5)):
                    at: TP = (m.topic() or "", m.partition() or 0)
                    offset = m.offset() or 0
                    if m.error() is not None or offset < starts.get(at, 0):
                        continue
                    batch.append(m)
                    upto[at] = max(upto[at], offset + 1)
                found.extend(batch)
                if not batch and done:
                    return found
        except ck.KafkaException as exc:
            raise client_error(exc) from None
        finally:
            reader.close()

    def pause(self, partitions: Iterable[TP]) -> None:
        self._consumer.pause([_tp(tp) for tp in partitions])

    def resume(self, partitions: Iterable[TP]) -> None:
        self._consumer.resume([_tp(tp) for tp in partitions])

    def seek(self, tp: TP, offset: int) -> None:
        try:
            self._consumer.seek(_tp(tp, offset))
        except ck.KafkaException as exc:
            raise client_error(exc) from None

    def watermarks(self, tp: TP) -> tuple[int, int] | None:
        try:
            low, high = self._consumer.get_watermark_offsets(_tp(tp), cached=True)
        except (ck.KafkaException, RuntimeError):
            return None
        if high is None or high < 0:
            return None
        return low, high

    def partition_count(self, topic: str, timeout: float) -> int | None:
        try:
            meta = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except ck.KafkaException:
            return None
        if meta is None or meta.error is not None or not meta.partitions:
            return None
        return len(meta.partitions)

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        _close(self._consumer)


# What the client's produce() raises when it refuses a record: its own error, or a value
# it cannot send (TypeError, ValueError).
_REFUSALS = (ck.KafkaException, TypeError, ValueError)


def _refused(exc: BaseException) -> ClientError:
    """The seam's error for a record the client refused to produce."""
    if isinstance(exc, ck.KafkaException):
        return client_error(exc)
    return ClientError(f"{type(exc).__name__}: {exc}", "INVALID_ARG")


class ConfluentProducer:
    """A `seam.Producer` (and `TransactionalProducer`) over `confluent_kafka.Producer`."""

    def __init__(self, config: Mapping[str, Any], on_failed: FailedCallback | None = None) -> None:
        conf = dict(config)
        if on_failed is not None:

            def failed(err: ck.KafkaError | None, message: Any) -> None:
                if err is not None:
                    on_failed(client_error(err), message.topic(), message.key(), message.value())

            conf["delivery.report.only.error"] = True
            conf["on_delivery"] = failed
        self._producer = ck.Producer(conf, logger=client_logger())
        self._raw_produce = self._producer.produce

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: OutHeaders | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        try:
            # Keyword arguments only when set: passing headers=None costs as much as the
            # call itself (1.6 against 0.6 us per record, measured).
            if on_delivery is None:
                if headers is None:
                    self._raw_produce(topic, value, key)
                else:
                    self._raw_produce(topic, value, key, headers=headers)
                return

            def delivered(err: ck.KafkaError | None, message: Any) -> None:
                on_delivery(None if err is None else client_error(err), message)

            self._raw_produce(topic, value, key, headers=headers, on_delivery=delivered)
        except _REFUSALS as exc:
            raise _refused(exc) from None

    def produce_many(self, records: Sequence[Produced]) -> list[tuple[int, ClientError]]:
        # The client's own call in one loop: a call of produce() per record costs a
        # fifth more (measured, docs/architecture.md "Where a record's time goes").
        produce, refused = self._raw_produce, []
        for at, (topic, value, key, headers) in enumerate(records):
            while True:
                try:
                    if headers is None:
                        produce(topic, value, key)
                    else:
                        produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # local queue full: let deliveries drain
                except _REFUSALS as exc:
                    refused.append((at, _refused(exc)))
                    break
        return refused

    def poll(self, timeout: float) -> int:
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    # -- transactions --------------------------------------------------------------------
    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self._producer, name)(*args)
        except ck.KafkaException as exc:
            raise client_error(exc) from None

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions", timeout)

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def send_offsets_to_transaction(
        self, offsets: Sequence[Offset], group_metadata: object, timeout: float
    ) -> None:
        tps = [_tp((o.topic, o.partition), o.offset, o.metadata) for o in offsets]
        self._call("send_offsets_to_transaction", tps, group_metadata, timeout)

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit_transaction", timeout)

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort_transaction", timeout)


_ACK_TYPES = {
    Ack.ACCEPT: ck.AcknowledgeType.ACCEPT,
    Ack.RELEASE: ck.AcknowledgeType.RELEASE,
    Ack.REJECT: ck.AcknowledgeType.REJECT,
}


class ConfluentShareConsumer:
    """A `seam.ShareConsumer` over `confluent_kafka.ShareConsumer` (a preview in the
    client), in explicit acknowledgement mode. `error` receives client errors that arrive
    as messages or through the error callback."""

    def __init__(
        self,
        config: Mapping[str, Any],
        on_acknowledged: AckCallback,
        on_error: Callable[[ClientError], None],
    ) -> None:
        conf = dict(config)
        conf["share.acknowledgement.mode"] = "explicit"
        conf["error_cb"] = lambda err: on_error(client_error(err))
        conf["logger"] = client_logger()
        self._on_error = on_error
        try:
            self._consumer = ck.ShareConsumer(conf)
        except (ck.KafkaException, ValueError) as exc:
            raise ClientError(str(exc), "INVALID_CONFIG") from None

        def acknowledged(
            offsets: Mapping[ck.TopicPartition, Any], error: ck.KafkaException | None
        ) -> None:
            whole = None if error is None else client_error(error)
            on_acknowledged([((tp.topic, tp.partition), whole) for tp in offsets])

        self._consumer.set_acknowledgement_commit_callback(acknowledged)

    def subscribe(self, topics: Sequence[str]) -> None:
        self._consumer.subscribe(list(topics))

    def poll(self, timeout: float) -> list[ShareMessage]:
        try:
            messages = self._consumer.poll(timeout)
        except ck.KafkaException as exc:
            raise client_error(exc) from None
        except ck.IllegalStateException as exc:  # a record of the last poll unacknowledged
            raise ClientError(str(exc), "ILLEGAL_STATE", fatal=True) from None
        good: list[Any] = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.fatal():
                raise client_error(error)
            else:
                self._on_error(client_error(error))
        return good

    def acknowledge(self, message: ShareMessage, ack: Ack) -> None:
        try:
            self._consumer.acknowledge_offset(
                message.topic(), message.partition(), message.offset(), _ACK_TYPES[ack]
            )
        except (ck.KafkaException, ck.IllegalStateException) as exc:  # e.g. not acquired now
            raise ClientError(str(exc), type(exc).__name__) from None

    def commit(self) -> None:
        try:
            self._consumer.commit_async()
        except ck.KafkaException as exc:
            raise client_error(exc) from None

    def close(self) -> None:
        _close(self._consumer)


class ConfluentKafka:
    """The `seam.Kafka` factory for real clusters."""

    def consumer(self, config: Mapping[str, Any], events: ConsumerEvents) -> ConfluentConsumer:
        return ConfluentConsumer(config, events)

    def producer(
        self, config: Mapping[str, Any], on_failed: FailedCallback | None = None
    ) -> ConfluentProducer:
        return ConfluentProducer(config, on_failed)

    def transactional_producer(self, config: Mapping[str, Any]) -> ConfluentProducer:
        return ConfluentProducer(config)
