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
    """Counts the delivery reports of one record's outputs; reports once, at the last."""

    __slots__ = ("error", "on_settled", "record", "remaining")

    def __init__(self, record: Record, count: int, on_settled: Settled) -> None:
        self.record, self.remaining, self.on_settled = record, count, on_settled
        self.error: BaseException | None = None

    def delivered(self, err: KafkaError | None, _msg: Any) -> None:
        self.settle(1, None if err is None else KafkaException(err))

    def settle(self, count: int, error: BaseException | None) -> None:
        """`count` outputs are settled (delivered, failed, or never sent)."""
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= count
        if self.remaining == 0:
            self.on_settled(self.record, self.error)


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

    def send(self, record: Record, outputs: list[Produced]) -> None:
        if self._producer is None:
            self._producer = Producer(self._config, logger=client_logger())
        producer = self._producer
        self.pending += 1
        ack = _Ack(record, len(outputs), self._settled)
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

    def _settled(self, record: Record, error: BaseException | None) -> None:
        self.pending -= 1
        self._on_settled(record, error)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (calls `on_settled` for records now settled)."""
        if self._producer is not None:
            self._producer.poll(timeout)

    def flush(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)
