"""A handler that hangs forever on one record (issue 6, point 6): the other keys keep
flowing, /healthz names the record, the stats count it in flight (not as a backlog), and
shutdown still ends within its timeout without committing it or anything past it.

/metrics and `parafka lag` during such a hang are checked in test_monitoring.py
(test_healthz_names_a_stuck_record_and_lag_shows_it).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from parafka import Record
from parafka.testing import LocalBroker
from parafka.testing.broker import free_port

from .helpers import committed, consumer, wait_until
from .test_cli import HANDLERS, cli_env, processed, run_args, started_cli, wait_exit
from .test_monitoring import _get, _health, _produce_each
from .test_processes import children_of

HANG_AT = f"{HANDLERS / 'hang_at.py'}:handle"


def test_a_hung_record_is_reported_and_does_not_block_shutdown(broker: LocalBroker) -> None:
    topic, group = broker.new_topic("hang", partitions=2), f"g-{uuid.uuid4().hex[:8]}"
    for partition in (0, 1):
        _produce_each(broker, topic, partition, 12)  # keys k0..k3 in turn
    release = threading.Event()
    seen: list[tuple[int, int]] = []

    def handler(record: Record) -> None:
        if (record.partition, record.offset) == (0, 2):
            release.wait()  # "forever": released only once the test is over
        seen.append((record.partition, record.offset))

    pc = consumer(broker, handler, topic, group, metrics_port=0, metrics_host="127.0.0.1",
                  stuck_after=1.0, shutdown_timeout=2.0)  # fmt: skip
    try:
        pc.start()
        # Key k2 of partition 0 (offsets 2, 6, 10) waits; the 21 other records are done.
        wait_until(lambda: pc.stats().processed == 21, 30, "every record but key k2's")
        wait_until(lambda: _health(pc)[0] == 503, 10, "/healthz to fail")
        [stuck] = _health(pc)[1]["stuck"]
        assert (stuck["topic"], stuck["partition"], stuck["offset"]) == (topic, 0, 2)
        assert stuck["age_seconds"] >= 1.0

        parts = {p.partition: p for p in pc.stats().partitions}
        hung = parts[0]
        assert (hung.oldest_unfinished, hung.committed) == (2, 2)
        assert hung.oldest_age is not None and hung.oldest_age >= 1.0
        assert hung.not_fetched == 0  # fetched: not a backlog
        assert hung.in_flight >= 1 and hung.in_flight + hung.queued == 3
        assert hung.done_not_committed == 7  # 3-5, 7-9, 11
        assert (parts[1].lag, parts[1].oldest_unfinished) == (0, None)

        started = time.monotonic()
        pc.stop()
        stats = pc.join(2.0 + 10)
        took = time.monotonic() - started
        assert stats is not None, "shutdown did not end"
        assert 1.5 <= took < 2.0 + 5, f"shutdown took {took:.1f} s with shutdown_timeout=2"
        assert committed(broker, group, topic, 2) == {0: 2, 1: 12}
    finally:
        release.set()
        pc.stop()
        pc.join(30)

    # Nothing lost: the same group starts again at the hung record.
    seen.clear()
    consumer(broker, lambda r: seen.append((r.partition, r.offset)), topic, group).run(
        until_idle=1.5
    )
    assert {(0, 2), (0, 6), (0, 10)} <= set(seen)
    assert all(partition == 0 and offset >= 2 for partition, offset in seen)
    assert committed(broker, group, topic, 2) == {0: 12, 1: 12}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_a_hung_worker_process_is_reported_and_stopped_on_sigterm(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """The same with `parafka run --executor process`: SIGTERM ends the run within
    --shutdown-timeout (plus the workers' stop), the hung worker process is terminated, and
    nothing is lost.

    A worker reports a chunk of records once all of them ran, so /healthz names the oldest
    record of the hung record's chunk (the position commits wait on), which may be an
    older record than the hung one; the records of that chunk are processed again later."""
    topic, group = broker.new_topic("hang-cli", partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    _produce_each(broker, topic, 0, 12)
    out, release, port = tmp_path / "out.txt", tmp_path / "release", free_port()
    args = run_args(broker, HANG_AT, topic, group, "--executor", "process", "--workers", "2",
                    "--metrics-port", str(port), "--stuck-after", "1",
                    "--shutdown-timeout", "3")  # fmt: skip
    env = cli_env(PARAFKA_TEST_OUT=str(out), PARAFKA_TEST_HANG_AT="11",
                  PARAFKA_TEST_RELEASE=str(release))  # fmt: skip
    health = f"http://127.0.0.1:{port}/healthz"

    def stuck() -> list[tuple[str, int, int]]:
        status, body = _get(health)
        found = json.loads(body).get("stuck", []) if status == 503 else []
        return [(s["topic"], s["partition"], s["offset"]) for s in found]

    try:
        with started_cli(args, env, tmp_path) as proc:
            hung = Path(f"{release}.hung")
            wait_until(lambda: hung.exists() or proc.poll() is not None, 60, "the hang")
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            wait_until(lambda: bool(stuck()), 10, "/healthz to name a stuck record")
            [(named_topic, partition, offset)] = stuck()
            assert (named_topic, partition) == (topic, 0) and offset <= 11
            workers = children_of(proc.pid)
            assert workers
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = wait_exit(proc, 3 + 10, tmp_path)
            took = time.monotonic() - started
        stderr = (tmp_path / "stderr").read_text()
        assert code == 0, stderr
        assert took < 3 + 5, f"shutdown took {took:.1f} s with --shutdown-timeout 3"
        assert "still running after 3.0 s; not committed" in stderr
        assert "Traceback" not in stderr
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10,
                   "the worker processes to be gone")  # fmt: skip
        assert (0, 11) not in processed(out)
        position = committed(broker, group, topic, 1)[0]
        assert position == -1001 or offset <= position <= 11  # never past the hung record
    finally:
        release.touch()

    # Nothing lost: the group starts again at the committed position.
    again: list[int] = []
    consumer(broker, lambda r: again.append(r.offset), topic, group).run(until_idle=1.5)
    assert {o for _, o in processed(out)} | set(again) == set(range(12))
    assert 11 in again
