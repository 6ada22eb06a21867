"""An in-memory Kafka cluster behind the `parafka.seam` protocols, on a virtual clock.

For the deterministic simulator and for users' own tests: no broker, no threads, no real
time. See docs/testing.md for what it models and what it does not.
"""

from parafka.memory.clock import VirtualClock
from parafka.memory.cluster import InMemoryCluster
from parafka.memory.consumer import MemoryConsumer
from parafka.memory.events import RecordingEvents
from parafka.memory.faults import Faults
from parafka.memory.groups import GroupMetadata
from parafka.memory.log import MemoryMessage
from parafka.memory.producer import MemoryProducer
from parafka.memory.transactions import MemoryTransactionalProducer

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
