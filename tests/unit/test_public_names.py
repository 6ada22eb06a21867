"""The public names: what `from parafka import ...` and `parafka.testing` offer users."""

from __future__ import annotations

import importlib

import parafka
import parafka.testing


def test_root_exports_exactly_these() -> None:
    # Written as one text on purpose: a public name added or removed must be added or
    # removed here too.
    pinned = """
        BrokerUnreachable ConfigError Output Overloaded ParafkaError ParallelConsumer
        PartitionStats Record RecordFailed RecordParked RecordStuck RetryPolicy Stats
        TopicNotFound tune_gc
    """
    assert sorted(parafka.__all__) == sorted(pinned.split())
    for name in parafka.__all__:
        assert getattr(parafka, name) is not None


def test_testing_offers_the_brokers_and_the_cluster() -> None:
    for name in ("LocalBroker", "KafkaBroker", "InMemoryCluster", "simulate"):
        assert name in parafka.testing.__all__, name
        assert getattr(parafka.testing, name) is not None


def test_entry_points_import() -> None:
    assert callable(importlib.import_module("parafka.cli").main)
    assert callable(importlib.import_module("parafka.sim.__main__").main)
    assert importlib.import_module("parafka.sim").simulate is parafka.testing.simulate
