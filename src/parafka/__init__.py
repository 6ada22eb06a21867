"""parafka: process Kafka records in parallel, keeping per-key order and exact offsets."""

from parafka.consumer import ParallelConsumer
from parafka.errors import (
    BrokerUnreachable,
    ConfigError,
    Overloaded,
    ParafkaError,
    RecordFailed,
    RecordParked,
    RecordStuck,
    TopicNotFound,
)
from parafka.gctuning import tune_gc
from parafka.record import Output, Record
from parafka.retry import RetryPolicy
from parafka.stats import PartitionStats, Stats

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
