"""parafka: process Kafka records in parallel, keeping per-key order and exact offsets."""

from parafka.core.errors import (
    BrokerUnreachable,
    ConfigError,
    Overloaded,
    ParafkaError,
    RecordFailed,
    RecordParked,
    RecordStuck,
    TopicNotFound,
)
from parafka.core.gctuning import tune_gc
from parafka.core.record import Output, Record
from parafka.core.retry import RetryPolicy
from parafka.core.stats import PartitionStats, Stats
from parafka.engine.consumer import ParallelConsumer

__all__ = [
    "BrokerUnreachable",
    "ConfigError",
    "Output",
    "Overloaded",
    "ParafkaError",
    "ParallelConsumer",
    "PartitionStats",
    "Record",
    "RecordFailed",
    "RecordParked",
    "RecordStuck",
    "RetryPolicy",
    "Stats",
    "TopicNotFound",
    "tune_gc",
]

__version__ = "0.1.0"
