"""An in-memory Kafka cluster behind the `parafka.core.seam` protocols, on a virtual clock.

For the deterministic simulator and for users' own tests: no broker, no threads, no real
time. See docs/testing.md for what it models and what it does not.
"""

from parafka.testing.memory.clock import VirtualClock
from parafka.testing.memory.cluster import InMemoryCluster
from parafka.testing.memory.consumer import MemoryConsumer
from parafka.testing.memory.events import RecordingEvents
from parafka.testing.memory.faults import Faults
from parafka.testing.memory.groups import GroupMetadata
from parafka.testing.memory.log import MemoryMessage
from parafka.testing.memory.producer import MemoryProducer
from parafka.testing.memory.transactions import MemoryTransactionalProducer

__all__ = [
    "Faults",
    "GroupMetadata",
    "InMemoryCluster",
    "MemoryConsumer",
    "MemoryMessage",
    "MemoryProducer",
    "MemoryTransactionalProducer",
    "RecordingEvents",
    "VirtualClock",
]
