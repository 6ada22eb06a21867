"""Prometheus metrics: every name and help text is declared here, once.

`StatsCollector` builds the metrics at scrape time from the latest `Stats` snapshot and
the executor's chunk timings, so nothing is counted twice and the per-record path does
no metrics work. Counters and gauges come from the snapshot (refreshed 4 times a second);
the two histograms are fed once per chunk of records (timings.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from parafka.core.stats import Stats
from parafka.core.timings import ChunkTimings, HistogramSnapshot
from parafka.observe.health import Health

Kind = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True, slots=True)
class Spec:
    """A metric's name (counters without `_total`, which the exposition adds), kind,
    help text, labels and, for histograms, bucket upper bounds."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


PARTITION = ("topic", "partition")

INFO = Spec("parafka_consumer", "info", "The consumer's group and settings.")
PROCESSED = Spec(
    "parafka_records_processed",
    "counter",
    "Records finished: the handler returned and every output was acknowledged.",
)
FAILED = Spec(
    "parafka_records_failed", "counter", "Handler failures, including those retried afterwards."
)
RETRIED = Spec("parafka_records_retried", "counter", "Retries scheduled after a failure.")
DEAD_LETTERED = Spec(
    "parafka_records_dead_lettered", "counter", "Records sent to the dead-letter topic."
)
DROPPED = Spec(
    "parafka_records_dropped",
    "counter",
    "Records that failed for good and were skipped (on_failure='skip'): not processed.",
)
SKIPPED = Spec(
    "parafka_records_skipped",
    "counter",
    "Records skipped on arrival because the commit metadata lists them as done.",
)
RATE_WAITS = Spec(
    "parafka_records_rate_waits",
    "counter",
    "Times a record was held back because its key was over --key-rate (it ran later).",
)
STUCK_REPLACED = Spec(
    "parafka_stuck_workers_replaced",
    "counter",
    "Worker processes killed and replaced (process executor), or handler tasks cancelled "
    "(asyncio executor), because a record ran over --stuck-after (--on-stuck "
    "restart-worker or park); the record was retried or given up.",
)
PARKED = Spec(
    "parafka_records_parked",
    "counter",
    "Records written to the retry topic (--retry-topic): reason 'failed' after their quick "
    "attempts, 'behind' because their key had parked records.",
    labels=("reason",),
)
FENCED_KEYS = Spec(
    "parafka_fenced_keys",
    "gauge",
    "Keys whose records are parked behind earlier parked ones now (--retry-topic).",
)
CONTROL_ACTIONS = Spec(
    "parafka_control_actions",
    "counter",
    "Operator actions from the control plane (pause, resume, skip, park, replay) by result: "
    "ok, refused (not applicable now), failed, timeout (the loop did not take it) or denied "
    "(a security rule: no or wrong token, cross-site, not JSON).",
    ("action", "result"),
)
OPERATOR_SKIPPED = Spec(
    "parafka_records_operator_skipped",
    "counter",
    "Records an operator skipped from the control plane: counted done without their handler.",
)
COMMITS = Spec("parafka_commits", "counter", "Offset commits sent to the broker.")
REBALANCES = Spec("parafka_rebalances", "counter", "Partition assignments received.")
IN_FLIGHT = Spec(
    "parafka_records_in_flight",
    "gauge",
    "Records with a handler (running, or waiting for their outputs' acknowledgement).",
)
CONCURRENCY_LIMIT = Spec(
    "parafka_concurrency_limit",
    "gauge",
    "Records allowed in flight now: the fixed concurrency, or with concurrency='auto' the "
    "adaptive limit, which follows the downstream's latency and failures.",
)
BUFFER_LIMIT = Spec(
    "parafka_buffer_limit",
    "gauge",
    "Records the consumer may hold in memory now: max_buffered, or without it a limit that "
    "grows with the rate (50 ms of records, at most 10,000). Fetching stops past it.",
)
QUEUED = Spec(
    "parafka_records_queued", "gauge", "Records received and not started, retries excluded."
)
WAITING_RETRY = Spec(
    "parafka_records_waiting_retry", "gauge", "Failed records waiting for their next attempt."
)
ASSIGNED = Spec("parafka_assigned_partitions", "gauge", "Partitions assigned to this consumer.")
PAUSED = Spec(
    "parafka_paused_partitions",
    "gauge",
    "Partitions paused for backpressure (buffer full) or fair sharing.",
)
LAG = Spec(
    "parafka_lag_records",
    "gauge",
    "True lag per partition, by part: not_fetched (log end - next offset to fetch), "
    "queued (received, not started, retries included), in_flight (with a handler) and "
    "done_not_committed (finished above the committed offset). Sum the parts for the lag.",
    (*PARTITION, "part"),
)
COMMITTED_OFFSET = Spec(
    "parafka_committed_offset", "gauge", "Last offset committed for the partition.", PARTITION
)
LOG_END_OFFSET = Spec(
    "parafka_log_end_offset",
    "gauge",
    "The partition's high watermark as last seen by the client.",
    PARTITION,
)
OLDEST_AGE = Spec(
    "parafka_oldest_unfinished_age_seconds",
    "gauge",
    "How long the committed position has waited on the partition's oldest unfinished "
    "record (0 when nothing is unfinished). Grows without bound for a stuck record.",
    PARTITION,
)
BEHIND_RETRY = Spec(
    "parafka_records_behind_retry",
    "gauge",
    "Records held back because an older record of their key (their partition in partition "
    "order) waits for a retry: what a retrying record blocks.",
    PARTITION,
)
METADATA_BYTES = Spec(
    "parafka_commit_metadata_bytes",
    "gauge",
    "Size of the last commit's metadata (the offsets done above the committed one).",
    PARTITION,
)
METADATA_MAX_BYTES = Spec(
    "parafka_commit_metadata_max_bytes",
    "gauge",
    "The cap of the commit metadata (--max-metadata-bytes); at the cap a partition starts "
    "nothing above its highest finished offset until the set fits again.",
)
METADATA_THROTTLED = Spec(
    "parafka_metadata_throttled_partitions",
    "gauge",
    "Partitions whose finished set does not fit the commit metadata's cap.",
)
STUCK = Spec(
    "parafka_stuck_partitions",
    "gauge",
    "Partitions whose oldest unfinished record is older than the stuck threshold.",
)
HEALTHY = Spec("parafka_healthy", "gauge", "1 when /healthz answers 200, else 0.")
HANDLER_SECONDS = Spec(
    "parafka_handler_seconds",
    "histogram",
    "Handler time per record. Observed once per chunk of records handed to a worker, "
    "weighted by the chunk's size, at the chunk's mean time per record.",
    buckets=(
        0.0001,
        0.0005,
        0.001,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)
LATENCY_SECONDS = Spec(
    "parafka_end_to_end_latency_seconds",
    "histogram",
    "Record timestamp to the end of its handler. Observed once per chunk of records, "
    "weighted by the chunk's size, at the mean of the chunk's first and last record.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)

QUEUE_WAIT_SECONDS = Spec(
    "parafka_queue_wait_seconds",
    "histogram",
    "Receipt to start of a record (retries and their backoff included). Observed once per "
    "dispatch round, weighted by the records it started, at their mean wait.",
    buckets=(0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)

ALL = (
    INFO,
    PROCESSED,
    FAILED,
    RETRIED,
    DEAD_LETTERED,
    DROPPED,
    SKIPPED,
    RATE_WAITS,
    STUCK_REPLACED,
    PARKED,
    FENCED_KEYS,
    CONTROL_ACTIONS,
    OPERATOR_SKIPPED,
    COMMITS,
    REBALANCES,
    IN_FLIGHT,
    CONCURRENCY_LIMIT,
    BUFFER_LIMIT,
    QUEUED,
    WAITING_RETRY,
    ASSIGNED,
    PAUSED,
    LAG,
    COMMITTED_OFFSET,
    LOG_END_OFFSET,
    OLDEST_AGE,
    BEHIND_RETRY,
    METADATA_BYTES,
    METADATA_MAX_BYTES,
    METADATA_THROTTLED,
    STUCK,
    HEALTHY,
    HANDLER_SECONDS,
    LATENCY_SECONDS,
    QUEUE_WAIT_SECONDS,
)
LAG_PARTS = ("not_fetched", "queued", "in_flight", "done_not_committed")


def new_timings() -> ChunkTimings:
    """The chunk timings an executor feeds, with the buckets declared above."""
    return ChunkTimings(
        HANDLER_SECONDS.buckets, LATENCY_SECONDS.buckets, queue_bounds=QUEUE_WAIT_SECONDS.buckets
    )


def _counter(spec: Spec, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(spec.name, spec.help, value=value)


def _gauge(spec: Spec, value: float | None = None) -> GaugeMetricFamily:
    if spec.labels:
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, value=value)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: 0.5, 1.0, +Inf."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _histogram(spec: Spec, snapshot: HistogramSnapshot) -> HistogramMetricFamily:
    buckets = [(_le(bound), count) for bound, count in snapshot.buckets]
    return HistogramMetricFamily(spec.name, spec.help, buckets=buckets, sum_value=snapshot.total)


class StatsCollector:
    """A prometheus_client collector reading the consumer's latest snapshot."""

    def __init__(
        self,
        stats: Callable[[], Stats],
        health: Callable[[Stats], Health],
        stuck_after: float,
        timings: ChunkTimings | None = None,
        info: Mapping[str, str] | None = None,
    ) -> None:
        self._stats = stats
        self._health = health
        self._stuck_after = stuck_after
        self._timings = timings
        self._info = dict(info or {})

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield InfoMetricFamily(INFO.name, INFO.help, value=self._info)
        yield _counter(PROCESSED, stats.processed)
        yield _counter(FAILED, stats.failed)
        yield _counter(RETRIED, stats.retried)
        yield _counter(DEAD_LETTERED, stats.dead_lettered)
        yield _counter(DROPPED, stats.skipped_after_failure)
        yield _counter(SKIPPED, stats.skipped_already_done)
        yield _counter(RATE_WAITS, stats.rate_waits)
        yield _counter(STUCK_REPLACED, stats.stuck_replaced)
        parked = CounterMetricFamily(PARKED.name, PARKED.help, labels=PARKED.labels)
        parked.add_metric(["failed"], stats.parked)
        parked.add_metric(["behind"], stats.parked_behind)
        yield parked
        yield _gauge(FENCED_KEYS, stats.fenced_keys)
        actions = CounterMetricFamily(
            CONTROL_ACTIONS.name, CONTROL_ACTIONS.help, labels=CONTROL_ACTIONS.labels
        )
        for action, result, count in stats.control_actions:
            actions.add_metric([action, result], count)
        yield actions
        yield _counter(OPERATOR_SKIPPED, stats.skipped_by_operator)
        yield _counter(COMMITS, stats.commits)
        yield _counter(REBALANCES, stats.rebalances)
        yield _gauge(IN_FLIGHT, stats.in_flight)
        yield _gauge(CONCURRENCY_LIMIT, stats.concurrency_limit)
        yield _gauge(BUFFER_LIMIT, stats.buffer_limit)
        yield _gauge(QUEUED, stats.queued)
        yield _gauge(WAITING_RETRY, stats.waiting_retry)
        yield _gauge(ASSIGNED, len(stats.partitions))
        yield _gauge(PAUSED, stats.paused_partitions)
        yield from self._partitions(stats)
        yield _gauge(HEALTHY, 1 if self._health(stats).ok else 0)
        if self._timings is not None:
            yield _histogram(HANDLER_SECONDS, self._timings.handler.snapshot())
            yield _histogram(LATENCY_SECONDS, self._timings.latency.snapshot())
            yield _histogram(QUEUE_WAIT_SECONDS, self._timings.queue_wait.snapshot())

    def _partitions(self, stats: Stats) -> Iterator[Metric]:
        lag, committed, log_end, age, behind, size = (
            _gauge(LAG),
            _gauge(COMMITTED_OFFSET),
            _gauge(LOG_END_OFFSET),
            _gauge(OLDEST_AGE),
            _gauge(BEHIND_RETRY),
            _gauge(METADATA_BYTES),
        )
        stuck = throttled = 0
        for p in stats.partitions:
            labels = [p.topic, str(p.partition)]
            parts = (p.not_fetched, p.queued, p.in_flight, p.done_not_committed)
            for name, value in zip(LAG_PARTS, parts, strict=True):
                if value is not None:
                    lag.add_metric([*labels, name], value)
            if p.committed is not None:
                committed.add_metric(labels, p.committed)
            if p.high_watermark is not None:
                log_end.add_metric(labels, p.high_watermark)
            age.add_metric(labels, p.oldest_age or 0.0)
            behind.add_metric(labels, p.behind_retry)
            size.add_metric(labels, p.metadata_bytes)
            throttled += p.metadata_throttled
            if p.oldest_age is not None and p.oldest_age > self._stuck_after:
                stuck += 1
        yield from (lag, committed, log_end, age, behind, size)
        yield _gauge(METADATA_MAX_BYTES, stats.metadata_max_bytes)
        yield _gauge(METADATA_THROTTLED, throttled)
        yield _gauge(STUCK, stuck)


def new_registry(collector: StatsCollector) -> CollectorRegistry:
    """A registry of its own (not the global one, so several consumers can run in one
    process) holding parafka's metrics and the process, platform and GC ones."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
