"""Settings validation and the librdkafka configuration parafka builds."""

from __future__ import annotations

import pytest

from parafka import ConfigError, ParallelConsumer
from parafka.kafka.config import consumer_config, producer_config


def make(**kwargs: object) -> ParallelConsumer:
    base: dict[str, object] = {
        "bootstrap_servers": "localhost:9092",
        "group_id": "g",
        "topics": ["t"],
    }
    base.update(kwargs)
    return ParallelConsumer(lambda r: None, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ordering": "random"}, "'random'"),
        ({"concurrency": 0}, "concurrency=0"),
        ({"concurrency": "8"}, "concurrency='8'"),
        ({"topics": []}, "no topic"),
        ({"group_id": ""}, "no consumer group"),
        ({"bootstrap_servers": ""}, "no bootstrap servers"),
        ({"executor": "fork"}, "'fork'"),
        ({"commit_interval": 0}, "commit_interval=0"),
        ({"max_attempts": 0}, "max_attempts=0"),
        ({"kafka_config": {"enable.auto.commit": "true"}}, "enable.auto.commit"),
    ],
)
def test_invalid_settings_name_the_value(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        make(**kwargs)
    assert needle in str(err.value)


async def _async_handle(record: object) -> None:
    return None


def test_an_async_handler_picks_the_async_executor() -> None:
    pc = ParallelConsumer(_async_handle, bootstrap_servers="b", group_id="g", topics="t")
    assert pc.settings.executor == "async"


@pytest.mark.parametrize(
    ("handler", "executor", "needle"),
    [
        (_async_handle, "thread", "is an async function"),
        (print, "async", "needs an async def handler"),
        (lambda r: None, "process", "is not a module-level function"),
    ],
)
def test_a_handler_that_does_not_fit_the_executor_names_the_fix(
    handler: object, executor: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        ParallelConsumer(
            handler,  # type: ignore[arg-type]
            bootstrap_servers="b",
            group_id="g",
            topics="t",
            executor=executor,
        )


def test_a_single_topic_string_is_one_topic() -> None:
    assert make(topics="orders").settings.topics == ("orders",)


def test_buffer_limit_default_grows_with_concurrency() -> None:
    assert make(concurrency=4).settings.buffer_limit == 1000
    assert make(concurrency=500).settings.buffer_limit == 5000
    assert make(max_buffered=42).settings.buffer_limit == 42


def test_consumer_and_producer_get_only_their_settings() -> None:
    user = {
        "security.protocol": "SASL_SSL",
        "sasl.password": "secret",
        "session.timeout.ms": 6000,
        "linger.ms": 50,
        "auto.offset.reset": "latest",
    }
    consumer = consumer_config("k:9092", "grp", user)
    producer = producer_config("k:9092", user)
    assert consumer["security.protocol"] == producer["security.protocol"] == "SASL_SSL"
    assert consumer["sasl.password"] == producer["sasl.password"] == "secret"
    assert consumer["session.timeout.ms"] == 6000 and "session.timeout.ms" not in producer
    assert producer["linger.ms"] == 50 and "linger.ms" not in consumer
    assert consumer["auto.offset.reset"] == "latest"  # the user's choice wins
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["group.id"] == "grp" and consumer["bootstrap.servers"] == "k:9092"


def test_auto_offset_reset_defaults_to_earliest() -> None:
    assert consumer_config("k", "g", {})["auto.offset.reset"] == "earliest"


def test_secret_values_are_masked_in_config_errors() -> None:
    from parafka.kafka.config import is_secret, shown, validate_client_config

    assert is_secret("sasl.password") and is_secret("ssl.key.password")
    assert is_secret("sasl.oauthbearer.client.secret") and not is_secret("sasl.username")
    assert shown("sasl.password", "pw") == "sasl.password=*****"
    with pytest.raises(ConfigError) as err:
        validate_client_config({"ssl.key.password": "topsecret", "bogus.key": "1"})
    assert "topsecret" not in str(err.value) and "bogus.key=1" in str(err.value)
