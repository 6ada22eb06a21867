"""The multi-process supervisor: its pure decisions with a fake clock, then the shell with
tiny `python -c` children (no broker)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from parafka.cli import run
from parafka.cli.supervisor import (
    Outcome,
    RestartPolicy,
    Supervision,
    Supervisor,
    run_arguments,
)
from parafka.core.errors import ConfigError

POLICY = RestartPolicy(initial_backoff=1.0, max_backoff=30.0, max_restarts=5, healthy_after=60.0)


def plan(
    processes: int = 1, policy: RestartPolicy = POLICY, kill_after: float = 90.0
) -> Supervision:
    """A Supervision whose children all started at t=0."""
    p = Supervision(processes, policy, kill_after)
    assert p.due(0.0) == list(range(processes))
    for slot in range(processes):
        p.started(slot, 0.0)
    assert p.due(0.0) == []
    return p


# -- pure decisions ------------------------------------------------------------------------


def test_a_child_that_exits_0_is_done_and_not_restarted() -> None:
    p = plan(2)
    assert p.ended(0, 0, now=5.0).outcome is Outcome.DONE
    assert p.due(1000.0) == []
    assert not p.finished  # child 2 still runs
    assert p.ended(1, 0, now=6.0).outcome is Outcome.DONE
    assert p.finished
    assert p.exit_code == 0


def test_a_failed_child_restarts_after_the_backoff() -> None:
    p = plan()
    ended = p.ended(0, 1, now=5.0)
    assert ended.outcome is Outcome.RESTART
    assert ended.delay == 1.0
    assert p.due(5.99) == []
    assert p.wait(5.5) == pytest.approx(0.5)
    assert p.due(6.0) == [0]
    assert not p.finished


def test_a_child_killed_by_a_signal_is_restarted() -> None:
    p = plan()
    assert p.ended(0, -signal.SIGKILL, now=5.0).outcome is Outcome.RESTART


def test_backoff_doubles_for_failures_in_a_row_up_to_the_cap() -> None:
    p = plan(policy=RestartPolicy(initial_backoff=1.0, max_backoff=5.0, max_restarts=10))
    now, delays = 0.0, []
    for _ in range(5):
        now += 2.0  # each run fails 2 s after it started: not healthy
        ended = p.ended(0, 1, now)
        delays.append(ended.delay)
        now += ended.delay
        assert p.due(now) == [0]
        p.started(0, now)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_healthy_run_resets_the_backoff() -> None:
    p = plan()
    assert p.ended(0, 1, now=1.0).delay == 1.0
    p.started(0, 2.0)
    assert p.ended(0, 1, now=3.0).delay == 2.0
    p.started(0, 5.0)
    assert p.ended(0, 1, now=5.0 + 60.0).delay == 1.0  # that run lasted healthy_after


def test_a_slot_is_given_up_after_max_restarts_quick_failures_in_a_row() -> None:
    p = plan(2, policy=RestartPolicy(initial_backoff=1.0, max_restarts=2, healthy_after=60.0))
    now = 0.0
    outcomes = []
    for _ in range(3):
        now += 10.0
        ended = p.ended(0, 1, now)
        outcomes.append(ended.outcome)
        now += ended.delay
        if ended.outcome is Outcome.RESTART:
            assert p.due(now) == [0]
            p.started(0, now)
    assert outcomes == [Outcome.RESTART, Outcome.RESTART, Outcome.GAVE_UP]
    assert p.due(now + 1000.0) == []
    assert not p.stopping  # the other child keeps working
    assert not p.finished
    assert p.ended(1, 0, now).outcome is Outcome.DONE
    assert p.finished
    assert p.failed_slots == [0]
    assert p.exit_code == 1


def test_failures_after_healthy_runs_never_give_up() -> None:
    p = plan(policy=RestartPolicy(initial_backoff=1.0, max_restarts=2, healthy_after=60.0))
    now = 0.0
    for _ in range(10):
        now += 61.0
        ended = p.ended(0, 1, now)
        assert ended.outcome is Outcome.RESTART
        assert ended.delay == 1.0
        now += ended.delay
        p.started(0, now)


def test_a_configuration_error_stops_everything_and_exits_2() -> None:
    p = plan(3)
    assert p.ended(1, 1, now=1.0).outcome is Outcome.RESTART  # slot 1 waits to restart
    assert p.ended(0, 2, now=1.5).outcome is Outcome.CONFIG_ERROR
    assert p.stopping
    assert p.due(100.0) == []  # the pending restart is cancelled
    assert p.ended(2, 0, now=2.0).outcome is Outcome.STOPPED
    assert p.finished
    assert p.exit_code == 2


@pytest.mark.parametrize(
    "code", [0, 130, -signal.SIGTERM, -signal.SIGINT], ids=["0", "130", "SIGTERM", "SIGINT"]
)
def test_children_ending_cleanly_after_a_stop_exit_0(code: int) -> None:
    p = plan(2)
    assert p.ended(1, 1, now=1.0).outcome is Outcome.RESTART
    p.stop(now=1.2)
    assert p.due(100.0) == []  # a pending restart is cancelled, and is no failure
    assert p.ended(0, code, now=2.0).outcome is Outcome.STOPPED
    assert p.finished
    assert p.exit_code == 0


@pytest.mark.parametrize("code", [1, -signal.SIGKILL], ids=["1", "SIGKILL"])
def test_a_child_failing_while_stopping_is_not_restarted_and_exits_1(code: int) -> None:
    p = plan()
    p.stop(now=1.0)
    assert p.ended(0, code, now=2.0).outcome is Outcome.FAILED
    assert p.due(100.0) == []
    assert p.finished
    assert p.exit_code == 1


def test_children_are_killed_once_they_outstay_the_stop() -> None:
    p = plan(kill_after=30.0)
    assert not p.kill_due(1000.0)  # not stopping: never
    p.stop(now=10.0)
    p.stop(now=20.0)  # a second signal does not move the deadline
    assert p.wait(10.0) == pytest.approx(30.0)
    assert not p.kill_due(39.9)
    assert p.kill_due(40.0)
    assert not p.kill_due(41.0)  # once


def test_restart_policy_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="max_restarts=-1"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ConfigError, match="initial_backoff=-1"):
        RestartPolicy(initial_backoff=-1)


# -- the child command line ----------------------------------------------------------------


def test_run_arguments_repeat_what_was_given_without_processes() -> None:
    given = ["json:dumps", "-b", "h:1", "-g", "g", "-t", "a", "-t", "b", "-X", "a.b=c=d",
             "--until-idle", "3", "--processes", "4", "--batch-wait", "1e-05"]  # fmt: skip
    ctx = run.make_context("run", given)
    arguments = run_arguments(ctx, reset="processes")
    assert arguments[0] == "run"
    assert arguments[arguments.index("--processes") + 1] == "1"  # env or --config cannot fork
    assert "--concurrency" not in arguments  # defaults are left to the child
    assert arguments[-2:] == ["--", "json:dumps"]
    again = run.make_context("run", arguments[1:])
    assert again.params == {**ctx.params, "processes": 1}


def test_processes_auto_is_one_per_usable_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    ctx = run.make_context("run", ["json:dumps", "-b", "h:1", "-g", "g", "-t", "a",
                                   "--processes", "auto"])  # fmt: skip
    assert ctx.params["processes"] == 3
    children = run_arguments(ctx, reset="processes")
    assert children[children.index("--processes") + 1] == "1"  # each child runs in itself
    monkeypatch.delattr(os, "sched_getaffinity")  # no affinity call: the core count
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert run.make_context("run", ["json:dumps", "-b", "h:1", "-g", "g", "-t", "a",
                                    "--processes", " AUTO "]).params["processes"] == 6  # fmt: skip


# -- the shell, with tiny children --------------------------------------------------------


def supervisor(code: str, processes: int, **kwargs: object) -> tuple[Supervisor, list[str]]:
    lines: list[str] = []
    sup = Supervisor(
        [sys.executable, "-c", code], processes, echo=lines.append, poll=0.05, **kwargs
    )  # type: ignore[arg-type]
    return sup, lines


QUICK = RestartPolicy(initial_backoff=0.01, max_restarts=2, healthy_after=60.0)


def test_shell_finished_children_are_not_restarted() -> None:
    sup, lines = supervisor("raise SystemExit(0)", 2, policy=QUICK)
    assert sup.run() == 0
    assert sum("started" in line for line in lines) == 2
    assert sum("exited with 0; finished" in line for line in lines) == 2


def test_shell_restarts_a_failing_child_then_gives_up() -> None:
    sup, lines = supervisor("raise SystemExit(1)", 1, policy=QUICK)
    assert sup.run() == 1
    assert sum("started" in line for line in lines) == 3, lines
    assert sum("exited with 1; restarting in 0.0 s" in line for line in lines) == 2, lines
    assert "giving up on it: it failed 3 times in a row" in lines[-2]
    assert lines[-1] == "parafka: error: child process(es) 1 failed for good; see above"


def child_waiting_for_sigterm(ready_dir: Path, on_sigterm: str) -> str:
    """Code of a child that installs `on_sigterm` for SIGTERM, says it is ready with a file,
    then sleeps 20 s and exits 1 (so a test passes only if the signal arrived)."""
    return (
        "import os, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, {on_sigterm})\n"
        f"open(os.path.join({str(ready_dir)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(20)\n"
        "sys.exit(1)\n"
    )


def signal_when_ready(sup: Supervisor, ready_dir: Path, children: int) -> threading.Thread:
    def wait_then_signal() -> None:
        deadline = time.monotonic() + 10
        while len(list(ready_dir.iterdir())) < children and time.monotonic() < deadline:
            time.sleep(0.01)
        sup.signal(signal.SIGTERM)

    thread = threading.Thread(target=wait_then_signal, daemon=True)
    thread.start()
    return thread


def test_shell_forwards_sigterm_and_exits_0_when_children_stop_cleanly(tmp_path: Path) -> None:
    code = child_waiting_for_sigterm(tmp_path, "lambda *_: sys.exit(0)")
    sup, lines = supervisor(code, 2, policy=QUICK)
    started = time.monotonic()
    thread = signal_when_ready(sup, tmp_path, 2)
    assert sup.run() == 0, lines
    thread.join()
    assert time.monotonic() - started < 10  # the children did not sleep their 20 s out
    assert any("SIGTERM received: sending SIGTERM to 2 child" in line for line in lines)
    assert sum("exited with 0; stopped" in line for line in lines) == 2, lines


def test_shell_kills_a_child_that_ignores_the_stop(tmp_path: Path) -> None:
    code = child_waiting_for_sigterm(tmp_path, "signal.SIG_IGN")
    sup, lines = supervisor(code, 1, policy=QUICK, kill_after=0.5)
    started = time.monotonic()
    thread = signal_when_ready(sup, tmp_path, 1)
    assert sup.run() == 1, lines
    thread.join()
    assert time.monotonic() - started < 10
    assert any("asked to stop; killing it" in line for line in lines), lines
    assert any("was killed by SIGKILL; it failed while stopping" in line for line in lines)


def test_shell_stops_every_child_on_a_configuration_error(tmp_path: Path) -> None:
    # The first child to create the marker exits 2; the others wait for SIGTERM.
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"try:\n    open({str(tmp_path / 'first')!r}, 'x').close()\n"
        "except FileExistsError:\n    time.sleep(20)\n    sys.exit(1)\n"
        "sys.exit(2)\n"
    )
    sup, lines = supervisor(code, 3, policy=QUICK)
    started = time.monotonic()
    assert sup.run() == 2, lines
    assert time.monotonic() - started < 10
    assert (
        sum(
            "exited with 2; a configuration error, so every child is stopped" in line
            for line in lines
        )
        == 1
    )
    assert not any("restarting" in line for line in lines), lines
    assert not any("parafka: error:" in line for line in lines)  # the child said it; no second line
