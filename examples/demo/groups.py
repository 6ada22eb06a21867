"""Scene: two consumer groups read one topic, each at its own offsets.

A fast group ("dashboard": short jobs, `unordered`) and a slow one ("audit": longer jobs,
`partition` order) start together on the same topic. When the fast one has done every
record it stops (committing the log end) while the slow one is part-way: the committed
offsets the broker holds for each group (what `parafka lag` reads) differ. Then the slow
one finishes. Checks: each group ran every record and committed the log end of every
partition; the slow group kept its order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from examples.demo.checks import verdict
from examples.demo.jobs import JobLog, sleep_jobs
from examples.demo.kafka import Produced, Stage
from examples.demo.results import Played, Row
from examples.demo.view import Lane, Panel
from parafka import ParallelConsumer
from parafka.kafka.grouplag import NoCommits, read_group_lag


@dataclass(frozen=True)
class Size:
    records: int
    partitions: int
    keys: int
    fast_ms: float
    slow_ms: float
    timeout: float


FULL = Size(records=6000, partitions=4, keys=64, fast_ms=2, slow_ms=4, timeout=90)
QUICK = Size(records=400, partitions=4, keys=16, fast_ms=0.5, slow_ms=2, timeout=60)


@dataclass
class Group:
    label: str
    ordering: str
    log: JobLog
    consumer: ParallelConsumer
    lane: Lane
    committed_when_fast_done: int = 0
    processed_when_fast_done: int = 0


def play(stage: Stage, panel: Panel) -> Played:
    size = QUICK if stage.quick else FULL
    topic = stage.topic("shared", size.partitions)
    produced = stage.produce(topic, sleep_jobs(size.records, size.keys, size.partitions, 0, 0, 3))
    panel.note(
        f"{size.records:,} records in {size.partitions} partitions; dashboard: "
        f"{size.fast_ms:g} ms jobs, unordered; audit: {size.slow_ms:g} ms jobs, partition order"
    )
    groups = [
        _group(stage, panel, topic, "dashboard", "unordered", size.fast_ms, 8, size.records),
        _group(stage, panel, topic, "audit", "partition", size.slow_ms, 8, size.records),
    ]
    fast, slow = groups
    for group in groups:
        group.lane.status = "joining its group"
        group.consumer.start()
    try:
        _until_done(fast, size.records, size.timeout)
        slow.processed_when_fast_done = slow.consumer.stats().processed
        fast.lane.status = "stopping (commits the log end)"
        _stop(fast)
        for group in groups:
            group.committed_when_fast_done = _committed(stage, group, topic)
        fast.lane.finish(f"done; committed {fast.committed_when_fast_done:,}")
        panel.note(
            f"when dashboard was done, the broker held: dashboard committed "
            f"{fast.committed_when_fast_done:,}, audit committed "
            f"{slow.committed_when_fast_done:,} of {produced.count:,} (it had processed "
            f"{slow.processed_when_fast_done:,}; it commits once a second)"
        )
        _until_done(slow, size.records, size.timeout)
    finally:
        for group in groups:
            _stop(group)
    rows = [_row(stage, group, topic, produced) for group in groups]
    slow.lane.finish(f"done; committed {_committed(stage, slow, topic):,}")
    return Played(
        rows,
        f"when dashboard had committed {fast.committed_when_fast_done:,}, audit had "
        f"committed {slow.committed_when_fast_done:,}; both ended with every record",
    )


def _group(
    stage: Stage,
    panel: Panel,
    topic: str,
    label: str,
    ordering: str,
    sleep_ms: float,
    concurrency: int,
    records: int,
) -> Group:
    log = JobLog(sleep_ms)
    consumer = stage.parallel(
        log.record, topic, f"groups-{label}", ordering=ordering, concurrency=concurrency
    )
    lane = panel.lane(f"group {label}", records, lambda: consumer.stats().processed)
    return Group(label, ordering, log, consumer, lane)


def _until_done(group: Group, records: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while group.consumer.stats().processed < records:
        if not group.consumer.is_running:
            group.consumer.join(10)  # re-raises why it stopped
            raise RuntimeError(f"group {group.label} stopped early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group.label} not done after {timeout:.0f} s")
        if group.consumer.stats().processed:
            group.lane.status = "running"
        time.sleep(0.05)


def _stop(group: Group) -> None:
    if group.consumer.is_running:
        group.consumer.stop()
        group.consumer.join(60)


def _committed(stage: Stage, group: Group, topic: str) -> int:
    """Records below the group's committed offsets, as the broker holds them."""
    try:
        rows = read_group_lag(
            stage.bootstrap_servers, group.consumer.settings.group_id, [topic], stage.settings
        )
    except NoCommits:
        return 0
    return sum(row.committed or 0 for row in rows)


def _row(stage: Stage, group: Group, topic: str, produced: Produced) -> Row:
    check, ok = verdict(group.log.calls, produced.count, group.ordering)
    committed = _committed(stage, group, topic)
    if committed != produced.count:
        check, ok = f"{check}; committed {committed:,} of {produced.count:,}", False
    else:
        check += "; committed the log end"
    return Row(
        f"group {group.label} ({group.ordering}, {group.log.sleep_ms:g} ms jobs)",
        f"{len(group.log.calls):,} records",
        f"committed {group.committed_when_fast_done:,} when dashboard was done",
        check,
        ok,
    )
