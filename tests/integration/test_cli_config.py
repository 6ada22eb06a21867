"""`parafka run` configured by a --config file and PARAFKA_* variables alone, with
--processes: the children must get the same settings (they inherit the environment and
re-read the file; values from either are not repeated on their command lines)."""

from __future__ import annotations

import uuid
from pathlib import Path

from parafka.testing import LocalBroker

from .test_cli import cli_env, produced, wait_exit
from .test_processes import RECORD_PIDS, processed, processes_of, supervisor


def test_processes_run_from_a_config_file_and_the_environment(
    broker: LocalBroker, tmp_path: Path
) -> None:
    topic, group = broker.new_topic("cfg-procs", partitions=4), f"g-{uuid.uuid4().hex[:8]}"
    expected = produced(broker, topic, 400, keys=40)
    config = tmp_path / f"{group}.toml"  # the group in the path: processes_of() finds them
    config.write_text(
        f'bootstrap-servers = "{broker.bootstrap_servers}"\n'
        f'topic = "{topic}"\n'
        "concurrency = 2\n"
        'ordering = "partition"\n'
        "until_idle = 3\n"
        "[kafka]\n"
        "session.timeout.ms = 6000\n"
        '"heartbeat.interval.ms" = 500\n'
    )
    out = tmp_path / "out.txt"
    env = cli_env(
        PARAFKA_GROUP=group,
        PARAFKA_PROCESSES="2",
        PARAFKA_TEST_OUT=str(out),
        PARAFKA_TEST_SLEEP_MS="5",
    )
    logs = tmp_path / "logs"
    with supervisor(["run", RECORD_PIDS, "--config", str(config)], env, logs, group) as proc:
        code = wait_exit(proc, 45, logs)
        assert processes_of(group) == []
    stderr = (logs / "stderr").read_text()
    assert code == 0, stderr
    assert stderr.count(") started") == 2, stderr
    done = processed(out)
    assert {(p, o) for p, o, _ in done} == expected
    assert len({pid for _, _, pid in done}) == 2, stderr
