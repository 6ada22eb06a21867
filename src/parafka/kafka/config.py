"""librdkafka configuration for the consumer and the producer parafka creates."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, ShareConsumer

from parafka.core.errors import ConfigError

# The throwaway clients of the offline check log here (their messages are librdkafka's).
log = logging.getLogger(__name__)

# Settings only one side understands; passing them to the other makes librdkafka warn.
_CONSUMER_ONLY = (
    "group.",
    "enable.auto.",
    "auto.commit.",
    "auto.offset.reset",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "fetch.",
    "queued.",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "coordinator.query.interval.ms",
    "consume.callback.max.messages",
    "allow.auto.create.topics",
)
_PRODUCER_ONLY = (
    "acks",
    "request.required.acks",
    "linger.ms",
    "queue.buffering.",
    "batch.",
    "compression.",
    "enable.idempotence",
    "transactional.id",
    "transaction.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "message.send.max.retries",
    "retry.backoff.ms",
    "partitioner",
    "sticky.partitioning.linger.ms",
    "max.in.flight",
)
# parafka manages these itself; letting a user turn them on would break its guarantees.
_MANAGED = {
    "enable.auto.commit": "parafka commits offsets itself, only past finished records",
    "enable.auto.offset.store": "parafka stores offsets itself",
}


def _matches(key: str, names: tuple[str, ...]) -> bool:
    return any(key == n or (n.endswith(".") and key.startswith(n)) for n in names)


def _stringify(config: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in config.items()}


def check_user_config(user: Mapping[str, Any]) -> None:
    """Refuse settings that would break parafka's guarantees."""
    for key, why in _MANAGED.items():
        if key in user and str(user[key]).lower() not in ("false", "0"):
            raise ConfigError(f"{key}={user[key]} is not allowed: {why}; remove it")


# Settings parafka takes from its own options: a different value in -X would be ignored.
_FROM_OPTIONS = {
    "bootstrap.servers": "-b/--bootstrap-servers (API bootstrap_servers=)",
    "group.id": "-g/--group (API group_id=)",
}
HEARTBEAT_DEFAULT_MS = 3000  # librdkafka's heartbeat.interval.ms


def check_not_overridden(user: Mapping[str, Any], key: str, value: str) -> None:
    """Refuse `key` in the user's client settings when it differs from the option parafka
    sets it from: silently dropping it would connect to, or join, something else."""
    if key in user and str(user[key]) != value:
        raise ConfigError(
            f"Kafka setting {key}={user[key]} conflicts with {value!r} given by "
            f"{_FROM_OPTIONS[key]}: parafka sets {key} from that option; remove {key} from "
            "-X / kafka_config / the [kafka] table"
        )


def check_session_timeout(user: Mapping[str, Any]) -> None:
    """Refuse a session timeout no member can keep: at or below the heartbeat interval,
    the group expires the member between two heartbeats and rebalances in a loop.

    Values between the heartbeat and Kafka's default group.min.session.timeout.ms (6000)
    are let through: a broker may allow them (the local broker does); Apache Kafka with
    its defaults refuses them at join, and the consumer then says so while it waits.
    """
    try:
        session = int(user["session.timeout.ms"])
        heartbeat = int(user.get("heartbeat.interval.ms", HEARTBEAT_DEFAULT_MS))
    except (KeyError, TypeError, ValueError):
        return
    if session <= heartbeat:
        raise ConfigError(
            f"Kafka setting session.timeout.ms={session} is not above heartbeat.interval.ms="
            f"{heartbeat}: the group would drop the consumer between two heartbeats and "
            "rebalance in a loop; use session.timeout.ms=6000 (Kafka's default minimum) or "
            "more, with heartbeat.interval.ms at most a third of it"
        )


def check_group_id(group_id: str) -> None:
    """Refuse a group id that is empty, blank or padded with whitespace or control characters.

    librdkafka aborts the whole process on a blank one (an assertion in the client), and a
    padded one is almost always a quoting mistake that would silently start a new group.
    """
    if not group_id:
        raise ConfigError("no consumer group: pass group_id='my-group' (CLI -g)")
    if not group_id.strip():
        raise ConfigError(
            f"group id {group_id!r} is blank: pass a name such as 'my-group' (CLI -g)"
        )
    if group_id != group_id.strip():
        raise ConfigError(
            f"group id {group_id!r} starts or ends with whitespace: use {group_id.strip()!r} "
            "(CLI -g)"
        )
    if not group_id.isprintable():
        raise ConfigError(
            f"group id {group_id!r} holds control characters: use printable text (CLI -g)"
        )


def consumer_config(
    bootstrap_servers: str, group_id: str, user: Mapping[str, Any]
) -> dict[str, Any]:
    check_group_id(group_id)
    check_user_config(user)
    check_not_overridden(user, "bootstrap.servers", bootstrap_servers)
    check_not_overridden(user, "group.id", group_id)
    config: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        "log.connection.close": False,
        # librdkafka waits this long before fetching again once its prefetch queue was
        # full (1 s by default); parafka drains the queue in bursts, and a 1 s pause per
        # burst halved throughput in measurements (benchmarks/overhead.py).
        "fetch.queue.backoff.ms": 20,
    }
    config.update((k, v) for k, v in _stringify(user).items() if not _matches(k, _PRODUCER_ONLY))
    config.update(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    return config


def share_consumer_config(
    bootstrap_servers: str, group_id: str, user: Mapping[str, Any]
) -> dict[str, Any]:
    """Settings of a share-group member: the user's (less producer-only ones) and the
    group. Classic-group settings (session.timeout.ms, auto.offset.reset, ...) are the
    share group's own configuration on the broker: the client refuses them, and so does
    `validate_client_config`."""
    check_group_id(group_id)
    check_not_overridden(user, "bootstrap.servers", bootstrap_servers)
    check_not_overridden(user, "group.id", group_id)
    config: dict[str, Any] = {"log.connection.close": False}
    config.update((k, v) for k, v in _stringify(user).items() if not _matches(k, _PRODUCER_ONLY))
    config.update({"bootstrap.servers": bootstrap_servers, "group.id": group_id})
    return config


def producer_config(bootstrap_servers: str, user: Mapping[str, Any]) -> dict[str, Any]:
    check_not_overridden(user, "bootstrap.servers", bootstrap_servers)
    config: dict[str, Any] = {"linger.ms": 5, "log.connection.close": False}
    config.update((k, v) for k, v in _stringify(user).items() if not _matches(k, _CONSUMER_ONLY))
    config["bootstrap.servers"] = bootstrap_servers
    return config


def admin_config(bootstrap_servers: str, user: Mapping[str, Any]) -> dict[str, Any]:
    """Settings for an AdminClient: the user's, less those only a consumer or a producer
    takes (connection and security settings pass unchanged)."""
    check_not_overridden(user, "bootstrap.servers", bootstrap_servers)
    config: dict[str, Any] = {"log.connection.close": False}
    config.update(
        (k, v)
        for k, v in _stringify(user).items()
        if not _matches(k, _CONSUMER_ONLY) and not _matches(k, _PRODUCER_ONLY)
    )
    config["bootstrap.servers"] = bootstrap_servers
    return config


_SECRET_WORDS = ("password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "token")


def is_secret(key: str) -> bool:
    """True for settings whose value must never be shown (passwords, keys, tokens)."""
    return any(word in key.lower() for word in _SECRET_WORDS)


def shown(key: str, value: Any) -> str:
    """`key=value` for messages, with secret values masked."""
    return f"{key}={'*****' if is_secret(key) else value}"


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` fit to show: secret values replaced by `*****`."""
    return {k: "*****" if is_secret(str(k)) else v for k, v in config.items()}


def validate_client_config(user: Mapping[str, Any], share: bool = False) -> None:
    """Let librdkafka judge the user's settings now, without connecting, so a typo is a
    configuration error up front rather than a failure at the first poll or output.
    `share`: the consumer is a share-group member (group_type="share")."""
    check_user_config(user)
    check_session_timeout(user)
    user = {k: v for k, v in user.items() if k not in _FROM_OPTIONS}  # checked by Settings
    if share:
        _check_share_config(share_consumer_config("", "parafka-config-check", user), user)
    checks: list[tuple[type[Any], dict[str, Any]]] = [
        (Producer, producer_config("", user)),
    ]
    if not share:
        checks.insert(0, (Consumer, consumer_config("", "parafka-config-check", user)))
    for client_class, config in checks:
        config.pop("bootstrap.servers")  # no broker: nothing connects
        config["logger"] = log
        try:
            client = client_class(config)
        except KafkaException as exc:
            raise ConfigError(_config_problem(exc, user)) from None
        if isinstance(client, Consumer):
            client.close()


def _check_share_config(config: dict[str, Any], user: Mapping[str, Any]) -> None:
    """The share consumer refuses what it does not take with a ValueError naming the key
    in backquotes (confluent-kafka 2.16)."""
    config.pop("bootstrap.servers")
    config["logger"] = log
    config["log_level"] = 3  # its "preview" warning at every creation is not news here
    try:
        ShareConsumer(config).close()
    except (KafkaException, ValueError) as exc:
        text = kafka_error_text(exc) if isinstance(exc, KafkaException) else str(exc)
        named = re.search(r"`([^`]+)`|\"([^\"]+)\"", text)
        key = next((k for k in named.groups() if k), None) if named else None
        shown_key = shown(key, user[key]) if key is not None and key in user else "a setting"
        raise ConfigError(
            f"Kafka setting {shown_key} is rejected by the share consumer: {text}; remove it "
            "(a share group's session, heartbeat and offset reset are group settings on the "
            "broker: kafka-configs --entity-type groups)"
        ) from None


def kafka_error_text(exc: KafkaException) -> str:
    """The client's own description of the error a KafkaException carries."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _config_problem(exc: KafkaException, user: Mapping[str, Any]) -> str:
    text = kafka_error_text(exc)
    named = re.search(r'"([^"]+)"', text)
    key = named.group(1) if named else None
    if key is not None and key in user:
        if is_secret(key):
            text = text.replace(str(user[key]), "*****")
        return (
            f"Kafka setting {shown(key, user[key])} is rejected by librdkafka: {text}; fix or "
            "remove it (see librdkafka's CONFIGURATION.md)"
        )
    given = " ".join(shown(k, v) for k, v in user.items()) or "(none)"
    return f"the Kafka client settings are rejected: {text}; check them: {given}"
