"""Read any consumer group's lag from the broker (`parafka lag`).

Committed offsets (and their metadata) come from a consumer created with the group's id
that never subscribes, so it never joins the group or disturbs its members; log ends from
the partitions' watermarks. Without topics, the group's committed partitions are listed
with the AdminClient and whole topics are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from parafka.core.errors import BrokerUnreachable, ParafkaError, wire_name
from parafka.core.lag import CommittedLag, committed_lag
from parafka.core.options import default
from parafka.kafka.config import admin_config, consumer_config, validate_client_config
from parafka.kafka.logs import client_logger

# librdkafka's log level for this one-shot command: what goes wrong is reported as the
# command's one error line, not as the client's connection chatter.
QUIET = 2


@wire_name("parafka.grouplag.NoCommits")
class NoCommits(ParafkaError):
    """The group has no committed offset to measure from (unknown group or never committed)."""


def read_group_lag(
    bootstrap_servers: str,
    group: str,
    topics: Sequence[str] = (),
    kafka_config: Mapping[str, Any] | None = None,
    timeout: float = default("connect_timeout"),
) -> list[CommittedLag]:
    """The lag of `group` on every partition of `topics` (default: the topics it has
    commits for), sorted by topic and partition. Raises NoCommits when there is none."""
    user = dict(kafka_config or {})
    validate_client_config(user)
    config = consumer_config(bootstrap_servers, group, {"log_level": QUIET, **user})
    config["logger"] = client_logger()
    consumer = Consumer(config)
    try:
        metadata = _metadata(consumer, bootstrap_servers, timeout)
        names = list(topics) or _committed_topics(bootstrap_servers, group, user, timeout)
        if not names:
            raise NoCommits(
                f"group {group!r} has no committed offsets (unknown group, or it never "
                "committed): check the name with -g"
            )
        missing = [t for t in names if t not in metadata.topics]
        if missing:
            raise ParafkaError(f"topic(s) {', '.join(missing)} do not exist: check -t")
        tps = [
            TopicPartition(topic, partition)
            for topic in names
            for partition in sorted(metadata.topics[topic].partitions)
        ]
        committed = consumer.committed(tps, timeout=timeout)
        rows = [_row(consumer, tp, timeout) for tp in committed]
    except KafkaException as exc:
        raise ParafkaError(f"reading the lag of group {group!r} failed: {_text(exc)}") from None
    finally:
        consumer.close()
    if all(row.committed is None for row in rows):
        raise NoCommits(
            f"group {group!r} has no committed offsets on {', '.join(names)}: check -g and -t"
        )
    return sorted(rows, key=lambda row: (row.topic, row.partition))


def _metadata(consumer: Consumer, bootstrap_servers: str, timeout: float) -> Any:
    try:
        return consumer.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {bootstrap_servers!r} within {timeout:g} s ({_text(exc)}): "
            "check --bootstrap-servers"
        ) from None


def _committed_topics(
    bootstrap_servers: str, group: str, user: Mapping[str, Any], timeout: float
) -> list[str]:
    """The topics `group` has a committed offset on."""
    admin = AdminClient(admin_config(bootstrap_servers, {"log_level": QUIET, **user}))
    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
    )
    result = futures[group].result(timeout=timeout)
    return sorted({tp.topic for tp in result.topic_partitions or () if tp.offset >= 0})


def _row(consumer: Consumer, tp: TopicPartition, timeout: float) -> CommittedLag:
    low, high = consumer.get_watermark_offsets(
        TopicPartition(tp.topic, tp.partition), timeout=timeout
    )
    return committed_lag(
        tp.topic,
        tp.partition,
        low=low,
        high=high,
        committed=tp.offset,
        metadata=tp.metadata,
    )


def _text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)
