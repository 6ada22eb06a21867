"""Metrics and the monitoring endpoint, without a broker: names, values, HTTP behaviour."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from parafka.core.errors import ConfigError
from parafka.core.record import Record
from parafka.core.stats import PartitionStats, Stats
from parafka.core.timings import ChunkTimings, Histogram
from parafka.observe import metrics
from parafka.observe.health import HealthPolicy, assess
from parafka.observe.monitor import MonitorSettings, serve
from tests.unit.samples import busy_stats

NOW = 1000.0


def _stats() -> Stats:
    return busy_stats(
        processed=120,
        skipped_already_done=1,
        dead_lettered=5,
        skipped_after_failure=7,
        in_flight=4,
        queued=6,
        buffer_limit=2500,
        metadata_max_bytes=4096,
        partitions=(
            PartitionStats(
                "orders",
                0,
                10,
                10,
                40,
                30,
                10,
                0,
                20,
                6,
                4,
                0,
                oldest_unfinished=10,
                oldest_age=90,
                behind_retry=3,
                metadata_bytes=120,
                metadata_throttled=True,
            ),
            PartitionStats("orders", 1, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0),
        ),
        at=NOW,
        membership="assigned",
        membership_since=1.0,
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_histogram_counts_weighted_observations() -> None:
    histogram = Histogram([0.1, 1.0])
    histogram.observe(0.05, 10)
    histogram.observe(0.5)
    histogram.observe(7.0, 2)
    snapshot = histogram.snapshot()
    assert snapshot.buckets == ((0.1, 10), (1.0, 11), (float("inf"), 13))
    assert snapshot.count == 13
    assert snapshot.total == pytest.approx(0.5 + 0.5 + 14.0)


def test_chunk_timings_observe_per_record_means() -> None:
    timings = ChunkTimings([0.01, 0.1], [1.0, 10.0], wall=lambda: 100.0)
    chunk = [Record("t", 0, o, timestamp=ms) for o, ms in ((0, 96_000), (1, 97_000), (2, 98_000))]
    timings.chunk(chunk, 0.06)  # 20 ms a record
    handler, latency = timings.handler.snapshot(), timings.latency.snapshot()
    assert handler.buckets[1] == (0.1, 3)
    assert handler.total == pytest.approx(0.06)
    assert latency.count == 3
    assert latency.total == pytest.approx(3 * 3.0)  # first and last: 4 s and 2 s ago
    timings.chunk([Record("t", 0, 3)], 0.001)  # no timestamp: handler time only
    assert timings.latency.snapshot().count == 3
    assert timings.handler.snapshot().count == 4


def test_every_declared_metric_is_exposed_with_its_values() -> None:
    timings = metrics.new_timings()
    timings.handler.observe(0.002, 120)
    policy = HealthPolicy(stuck_after=60.0)
    collector = metrics.StatsCollector(
        _stats, lambda s: assess(s, NOW, policy), 60.0, timings, {"group": "g"}
    )
    text = generate_latest(metrics.new_registry(collector)).decode()
    for spec in metrics.ALL:
        assert f"# HELP {spec.name}" in text, spec.name
    values = _samples(text)
    assert values[("parafka_records_processed_total", ())] == 120
    assert values[("parafka_records_failed_total", ())] == 3
    assert values[("parafka_records_dead_lettered_total", ())] == 5
    assert values[("parafka_records_dropped_total", ())] == 7
    assert values[("parafka_records_in_flight", ())] == 4
    assert values[("parafka_paused_partitions", ())] == 1
    assert values[("parafka_buffer_limit", ())] == 2500
    lag = {
        part: values[
            (
                "parafka_lag_records",
                (("part", part), ("partition", "0"), ("topic", "orders")),
            )
        ]
        for part in metrics.LAG_PARTS
    }
    assert lag == {"not_fetched": 20, "queued": 6, "in_flight": 4, "done_not_committed": 0}
    assert values[("parafka_stuck_partitions", ())] == 1
    assert values[("parafka_healthy", ())] == 0
    labels = (("partition", "0"), ("topic", "orders"))
    assert values[("parafka_oldest_unfinished_age_seconds", labels)] == 90
    assert values[("parafka_records_behind_retry", labels)] == 3
    assert values[("parafka_commit_metadata_bytes", labels)] == 120
    assert values[("parafka_commit_metadata_max_bytes", ())] == 4096
    assert values[("parafka_metadata_throttled_partitions", ())] == 1
    assert values[("parafka_handler_seconds_count", ())] == 120
    assert values[("parafka_consumer_info", (("group", "g"),))] == 1
    assert "process_resident_memory_bytes" in text


def test_names_are_declared_once() -> None:
    names = [spec.name for spec in metrics.ALL]
    assert len(names) == len(set(names))
    assert all(name.startswith("parafka_") for name in names)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoint_serves_metrics_health_and_releases_its_port() -> None:
    snapshot = {"stats": _stats()}
    server = serve(
        MonitorSettings(0, "127.0.0.1", HealthPolicy(stuck_after=60.0)),
        lambda: snapshot["stats"],
        clock=lambda: NOW,
        timings=metrics.new_timings(),
    )
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _get(f"{base}/healthz")
        assert status == 503
        assert json.loads(body)["stuck"][0]["offset"] == 10
        snapshot["stats"] = Stats(at=NOW, membership="assigned")
        status, body = _get(f"{base}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
        status, body = _get(f"{base}/metrics")
        assert status == 200 and "parafka_records_processed_total 0.0" in body
        assert _get(f"{base}/nothing")[0] == 404
        with pytest.raises(ConfigError, match=f"metrics port {server.port} is already in use"):
            serve(MonitorSettings(server.port, "127.0.0.1"), Stats, clock=lambda: NOW)
    finally:
        server.stop()
    assert not any(t.name == "parafka-monitor" for t in threading.enumerate())
    with socket.socket() as probe:  # nothing listens there any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        probe.bind(("127.0.0.1", server.port))
        probe.listen()


@pytest.mark.parametrize("port", [-1, 65536, "80", True])
def test_bad_ports_are_configuration_errors(port: object) -> None:
    with pytest.raises(ConfigError, match="metrics_port"):
        MonitorSettings(port)  # type: ignore[arg-type]
