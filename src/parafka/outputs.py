"""Producing handler outputs: a record is done only when all its outputs are acknowledged.

Used from the control thread only: `send()` produces, and delivery reports arrive during
`poll()`/`flush()` on the same thread, so no lock is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from parafka.kafka_config import producer_config
from parafka.logs import client_logger
from parafka.record import Produced, Record

Settled = Callable[[Record, BaseException | None], None]


class _Ack:
    """Counts the delivery reports of the outputs of some records (one record, or the
    records of a batch, whose outputs belong to all of them); reports each record once,
    at the last report."""

    __slots__ = ("error", "on_settled", "records", "remaining")

    def __init__(self, records: list[Record], count: int, on_settled: Settled) -> None:
        self.records, self.remaining, self.on_settled = records, count, on_settled
        self.error: BaseException | None = None

    def delivered(self, err: KafkaError | None, _msg: Any) -> None:
        self.settle(1, None if err is None else KafkaException(err))

    def settle(self, count: int, error: BaseException | None) -> None:
        """`count` outputs are settled (delivered, failed, or never sent)."""
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= count
        if self.remaining == 0:
            for record in self.records:
                self.on_settled(record, self.error)


class OutputProducer:
    """Produces outputs and calls `on_settled(record, error)` once all of a record's
    outputs are acknowledged (error None) or one of them failed."""

    def __init__(
        self, bootstrap_servers: str, kafka_config: Mapping[str, Any], on_settled: Settled
    ) -> None:
        self._config = producer_config(bootstrap_servers, kafka_config)
        self._on_settled = on_settled
        self._producer: Any = None  # created at the first output
        self.pending = 0  # records whose outputs are not all settled

    def send(
        self, records: list[Record], outputs: list[Produced], on_settled: Settled | None = None
    ) -> None:
        """Produce `outputs` for `records`; each record settles (through `on_settled`, by
        default the producer's) when all of them are acknowledged."""
        if self._producer is None:
            self._producer = Producer(self._config, logger=client_logger())
        producer = self._producer
        self.pending += len(records)
        settled = self._on_settled if on_settled is None else on_settled

        def counted(record: Record, error: BaseException | None) -> None:
            self.pending -= 1
            settled(record, error)

        ack = _Ack(records, len(outputs), counted)
        for sent, out in enumerate(outputs):
            while True:
                try:
                    producer.produce(
                        out.topic,
                        out.value,
                        out.key,
                        headers=out.headers,
                        on_delivery=ack.delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
                except (KafkaException, TypeError, ValueError) as exc:
                    ack.settle(len(outputs) - sent, exc)  # these get no delivery report
                    return

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (calls `on_settled` for records now settled)."""
        if self._producer is not None:
            self._producer.poll(timeout)

    def flush(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)
