"""The lean core: `pip install parafka` without extras imports and runs; a feature used
without its extra says in one line which extra to install.

Each case runs in a fresh interpreter whose import system refuses the extras' modules, as
if they were not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

_WITHOUT_EXTRAS = """
import importlib.abc, sys

BLOCKED = {"click", "rich", "prometheus_client", "opentelemetry"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def _run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_library_imports_and_runs_without_the_extras() -> None:
    result = _run_without_extras(
        """
        import parafka.testing  # the public test helpers too
        from parafka import ParallelConsumer
        from parafka.testing.memory import InMemoryCluster

        cluster = InMemoryCluster()
        cluster.create_topic("t", 2)
        for i in range(50):
            cluster.produce("t", b"x", key=str(i % 5).encode())
        pc = ParallelConsumer(
            lambda record: None, bootstrap_servers="memory", group_id="g", topics="t",
            kafka=cluster,
        )
        stats = pc.run(until_idle=0.2)
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        print(stats.processed, loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["50", "[]"]


def test_metrics_port_without_prometheus_is_a_config_error_naming_the_extra() -> None:
    result = _run_without_extras(
        """
        from parafka import ConfigError, ParallelConsumer

        try:
            ParallelConsumer(
                lambda record: None, bootstrap_servers="localhost:9092", group_id="g",
                topics="t", metrics_port=0,
            )
        except ConfigError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "metrics_port= (--metrics-port) needs prometheus_client, which is not installed: "
        "pip install 'parafka[metrics]'\n"
    )


def test_the_command_without_click_is_one_line_naming_the_extra_and_exit_2() -> None:
    result = _run_without_extras(
        """
        from parafka.__main__ import main

        sys.exit(main())
        """
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "parafka: error: the parafka command needs click, which is not installed: "
        "pip install 'parafka[cli]'\n"
    )


def test_the_console_script_goes_through_the_check() -> None:
    (script,) = entry_points(group="console_scripts", name="parafka")
    assert script.value == "parafka.__main__:main"
