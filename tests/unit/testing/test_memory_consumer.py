"""A handler tested without a broker: ParallelConsumer over the in-memory cluster."""

from __future__ import annotations

import json

from parafka import Output, ParallelConsumer, Record
from parafka.testing import InMemoryCluster


def test_a_parallel_consumer_runs_on_the_in_memory_cluster() -> None:
    cluster = InMemoryCluster()
    cluster.create_topic("orders", 3)
    cluster.create_topic("totals", 1)
    for i in range(300):
        cluster.produce("orders", json.dumps({"id": i}).encode(), key=f"c{i % 7}".encode())
    seen: dict[bytes | None, list[int]] = {}

    def handle(record: Record) -> Output:
        order = record.json()
        seen.setdefault(record.key, []).append(order["id"])
        return Output({"id": order["id"], "seen": True}, key=record.key)

    pc = ParallelConsumer(
        handle,
        bootstrap_servers="memory",
        group_id="g",
        topics=["orders"],
        output_topic="totals",
        concurrency=8,
        kafka=cluster,
    )
    stats = pc.run(until_idle=0.3)
    assert stats.processed == 300
    assert sorted(json.loads(m.value() or b"")["id"] for m in cluster.messages("totals", 0)) == (
        list(range(300))
    )
    for ids in seen.values():
        assert ids == sorted(ids)  # one key's records in order
    ends = [cluster.end_offset(("orders", p)) for p in range(3)]
    assert [cluster.committed("g", "orders", p).offset for p in range(3)] == ends
