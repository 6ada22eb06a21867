"""`parafka run --processes N`: N ordinary `parafka run` children in one consumer group.

`Supervision` decides (pure, given the time): which child slot starts when, whether a child
that ended is restarted and after what backoff, when a slot has failed for good, and the exit
code. `Supervisor` is the I/O shell: it starts the children, reaps them, applies those
decisions and forwards SIGINT/SIGTERM.

Exit codes of a child: 0 finished (e.g. `--until-idle`): not restarted; 2 configuration
error: every child would fail the same way, so all stop and the supervisor exits 2; anything
else (1, killed by a signal) while running: restarted with exponential backoff. A slot is
given up (failed for good, exit 1 at the end) after `max_restarts` restarts in a row none of
whose runs lasted `healthy_after` seconds. That is counted per run rather than in a time window
on purpose: with a growing backoff, a window only ever counts crashes at start-up, and a child
that fails some seconds into each run (a record failing its last attempt, an unreachable
broker) would be restarted forever.

Children run in their own process groups so a Ctrl+C in the terminal reaches them once,
through the supervisor, not twice (a second signal shortens a child's drain). On Linux each
child is also sent SIGTERM by the kernel if the supervisor dies without stopping it.
"""

from __future__ import annotations

import enum
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click

from parafka.cli.config import INHERITED_SECRETS, KAFKA_PARAM
from parafka.core.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConfigError
from parafka.kafka.config import is_secret
from parafka.testing.broker import _die_with_parent

# How a child asked to stop by our signal may end without having failed: its own clean exit,
# or (signalled before it installed its handlers) the default action of the signal.
_STOPPED_CODES = frozenset({EXIT_OK, EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM})


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """Backoff before restarting a failed child, and when to give up on its slot.

    The n-th failure in a row waits `initial_backoff * 2**(n-1)` seconds, capped at
    `max_backoff`. A run that lasted `healthy_after` seconds resets the count.
    """

    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    max_restarts: int = 5
    healthy_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ConfigError(f"max_restarts={self.max_restarts} is invalid: use 0 or more")
        for name in ("initial_backoff", "max_backoff", "healthy_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is invalid: use seconds >= 0")

    def backoff(self, failures: int) -> float:
        """Seconds to wait before restarting after `failures` failures in a row (>= 1)."""
        return min(self.max_backoff, self.initial_backoff * 2.0 ** (failures - 1))


class Outcome(enum.Enum):
    DONE = "done"  # exited 0 while running: finished, not restarted
    STOPPED = "stopped"  # ended cleanly after we asked it to stop
    RESTART = "restart"  # failed; starts again after `Ended.delay`
    GAVE_UP = "gave up"  # failed too often in a row: the slot failed for good
    CONFIG_ERROR = "config error"  # exited 2: every child is being stopped
    FAILED = "failed"  # failed while stopping (or was killed): not restarted


@dataclass(frozen=True, slots=True)
class Ended:
    """What happens after a child ended, for the shell to apply and to log."""

    outcome: Outcome
    failures: int = 0  # failures in a row of this slot, this one included
    delay: float = 0.0  # RESTART: seconds until the new start


@dataclass(slots=True)
class _Slot:
    state: str = "waiting"  # waiting (to start) | running | done | failed
    start_at: float = -math.inf
    started: float = 0.0
    failures: int = 0


class Supervision:
    """The supervisor's decisions for `processes` child slots. Pure: time comes in as `now`."""

    def __init__(self, processes: int, policy: RestartPolicy, kill_after: float) -> None:
        if processes < 1:
            raise ConfigError(f"processes={processes} is invalid: use 1 or more")
        self.policy = policy
        self.kill_after = kill_after
        self.stopping = False
        self.kill_at = math.inf
        self.config_error = False
        self._slots = [_Slot() for _ in range(processes)]

    def due(self, now: float) -> list[int]:
        """Slots (0-based) whose child should start now."""
        if self.stopping:
            return []
        return [i for i, s in enumerate(self._slots) if s.state == "waiting" and s.start_at <= now]

    def started(self, slot: int, now: float) -> None:
        s = self._slots[slot]
        s.state, s.started = "running", now

    def ended(self, slot: int, code: int, now: float) -> Ended:
        """Child `slot` exited with `code` (negative: killed by that signal)."""
        s = self._slots[slot]
        if code == EXIT_USAGE:
            s.state, self.config_error = "failed", True
            self.stop(now)
            return Ended(Outcome.CONFIG_ERROR)
        if self.stopping:
            clean = code in _STOPPED_CODES
            s.state = "done" if clean else "failed"
            return Ended(Outcome.STOPPED if clean else Outcome.FAILED)
        if code == EXIT_OK:
            s.state = "done"
            return Ended(Outcome.DONE)
        if now - s.started >= self.policy.healthy_after:
            s.failures = 0
        s.failures += 1
        if s.failures > self.policy.max_restarts:
            s.state = "failed"
            return Ended(Outcome.GAVE_UP, s.failures)
        delay = self.policy.backoff(s.failures)
        s.state, s.start_at = "waiting", now + delay
        return Ended(Outcome.RESTART, s.failures, delay)

    def stop(self, now: float) -> None:
        """No more starts; children still running get `kill_after` seconds to end."""
        if self.stopping:
            return
        self.stopping, self.kill_at = True, now + self.kill_after
        for s in self._slots:
            if s.state == "waiting":  # a pending restart is cancelled, not a failure
                s.state = "done"

    def kill_due(self, now: float) -> bool:
        """True (once) when children still running have outstayed the stop: kill them."""
        if now < self.kill_at:
            return False
        self.kill_at = math.inf
        return True

    def wait(self, now: float) -> float | None:
        """Seconds until the next start or kill is due; None when none is planned."""
        times = [s.start_at for s in self._slots if s.state == "waiting"]
        if self.stopping:
            times = [self.kill_at]
        return max(0.0, min(times) - now) if times else None

    @property
    def finished(self) -> bool:
        return all(s.state in ("done", "failed") for s in self._slots)

    @property
    def failed_slots(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.state == "failed"]

    @property
    def exit_code(self) -> int:
        if self.config_error:
            return EXIT_USAGE
        return EXIT_FAILURE if self.failed_slots else EXIT_OK


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


class Supervisor:
    """Runs `command` as `processes` children and supervises them until all have ended."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        policy: RestartPolicy | None = None,
        kill_after: float = 90.0,
        echo: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 0.5,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = None if env is None else dict(env)  # None: the children inherit ours
        self.plan = Supervision(processes, policy or RestartPolicy(), kill_after)
        self._echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self._clock = clock
        self._poll = poll  # seconds between checks when no signal wakes the loop
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._signals: deque[int] = deque()
        # The loop sleeps in select() on this pipe; a byte wakes it. Signals write one
        # through set_wakeup_fd (a threading.Event set from a signal handler could deadlock).
        self._wake_read, self._wake_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)
        self._closed = False

    def signal(self, signum: int) -> None:
        """Ask the children to stop (as SIGINT/SIGTERM would); thread- and signal-safe."""
        self._signals.append(signum)
        if not self._closed:
            with suppress(OSError):  # a full pipe wakes the loop anyway
                os.write(self._wake_write, b"\0")

    def run(self) -> int:
        """Start the children, supervise them until all ended; returns the exit code. Once."""
        try:
            with self._handling_signals():
                try:
                    while not self.plan.finished:
                        now = self._clock()
                        self._forward_signals(now)
                        self._reap(now)
                        self._kill_overdue(now)
                        for slot in self.plan.due(now):
                            self._start(slot, now)
                        wait = self.plan.wait(now)
                        if not self.plan.finished:
                            self._sleep(self._poll if wait is None else min(self._poll, wait))
                finally:
                    self._kill_all()  # only on an unexpected error: never leave a child behind
        finally:
            self._closed = True
            os.close(self._wake_read)
            os.close(self._wake_write)
        failed = self.plan.failed_slots
        if failed and not self.plan.config_error:
            slots = ", ".join(str(slot + 1) for slot in failed)
            self._echo(f"parafka: error: child process(es) {slots} failed for good; see above")
        return self.plan.exit_code

    def _sleep(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, less if a signal or `signal()` wakes the loop."""
        ready, _, _ = select.select([self._wake_read], [], [], timeout)
        if ready:
            with suppress(BlockingIOError):
                while os.read(self._wake_read, 512):
                    pass

    def _start(self, slot: int, now: float) -> None:
        posix: dict[str, Any] = {}
        if os.name == "posix":
            posix = {"process_group": 0, "preexec_fn": _die_with_parent()}
        self.plan.started(slot, now)
        try:
            child = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, env=self.env, **posix)
        except OSError as exc:  # e.g. out of processes: a failure like any other
            ended = self.plan.ended(slot, EXIT_FAILURE, now)
            self._echo(f"parafka: child {slot + 1} could not start: {exc}; {self._explain(ended)}")
            return
        self._children[slot] = child
        self._say(slot, child, "started")

    def _reap(self, now: float) -> None:
        for slot, child in list(self._children.items()):
            code = child.poll()
            if code is None:
                continue
            del self._children[slot]
            ended = self.plan.ended(slot, code, now)
            self._say(slot, child, f"{_describe(code)}; {self._explain(ended)}")
            if ended.outcome is Outcome.CONFIG_ERROR:
                self._send_all(signal.SIGTERM)

    def _explain(self, ended: Ended) -> str:
        policy = self.plan.policy
        match ended.outcome:
            case Outcome.DONE:
                return "finished"
            case Outcome.STOPPED:
                return "stopped"
            case Outcome.RESTART:
                return f"restarting in {ended.delay:.1f} s"
            case Outcome.GAVE_UP:
                return (
                    f"giving up on it: it failed {ended.failures} times in a row, each time "
                    f"within {policy.healthy_after:g} s of starting; see its errors above"
                )
            case Outcome.CONFIG_ERROR:
                return "a configuration error, so every child is stopped"
            case Outcome.FAILED:
                return "it failed while stopping"

    def _forward_signals(self, now: float) -> None:
        while self._signals:
            signum = self._signals.popleft()
            first = not self.plan.stopping
            self.plan.stop(now)
            name = signal.Signals(signum).name
            forwarded = signal.SIGTERM if signum == signal.SIGHUP else signum
            what = (
                "each finishes its running records and commits"
                if first
                else "they stop without waiting for running records"
            )
            self._echo(
                f"parafka: {name} received: sending {signal.Signals(forwarded).name} to "
                f"{len(self._children)} child process(es); {what}"
            )
            self._send_all(forwarded)

    def _kill_overdue(self, now: float) -> None:
        if not self._children or not self.plan.kill_due(now):
            return
        for slot, child in self._children.items():
            self._say(
                slot,
                child,
                f"still running {self.plan.kill_after:g} s after it was asked to stop; killing it",
            )
            child.kill()

    def _send_all(self, signum: int) -> None:
        for child in self._children.values():
            child.send_signal(signum)  # a no-op for a child that already exited

    def _kill_all(self) -> None:
        for child in self._children.values():
            child.kill()
        for child in self._children.values():
            child.wait()

    def _say(self, slot: int, child: subprocess.Popen[bytes], text: str) -> None:
        self._echo(f"parafka: child {slot + 1} (pid {child.pid}) {text}")

    @contextmanager
    def _handling_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; `signal()` still works
            return

        def forward(signum: int, _frame: FrameType | None) -> None:
            self.signal(signum)

        def ignore(_signum: int, _frame: FrameType | None) -> None:
            pass  # the wakeup fd already woke the loop, which reaps the child

        handlers: dict[int, Any] = {signal.SIGINT: forward, signal.SIGTERM: forward}
        if hasattr(signal, "SIGHUP"):  # the terminal closed: stop the children, like SIGTERM
            handlers[signal.SIGHUP] = forward
        if hasattr(signal, "SIGCHLD"):  # a child ended: reap it now rather than at the poll
            handlers[signal.SIGCHLD] = ignore
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        previous_fd = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def run_arguments(ctx: click.Context, reset: str) -> list[str]:
    """The command line that repeats what `ctx` parsed, with option `reset` at its default.

    Only values given on the command line are repeated: a child inherits the environment
    (PARAFKA_* variables) and gets the same --config, and has the same defaults. `reset` is
    written out (`--processes 1`) so that neither of those can set it in the child. Secret
    -X settings are left out: `secret_settings` hands them over through the environment,
    since any user can read a process's command line.
    """
    options: list[str] = []
    arguments: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None:
            continue
        if name == reset:
            options.extend([max(param.opts, key=len), str(param.get_default(ctx))])
            continue
        value = ctx.params.get(name)
        if isinstance(param, click.Argument):
            arguments.extend(str(v) for v in _values(value))
            continue
        if not isinstance(param, click.Option) or value is None:
            continue
        if ctx.get_parameter_source(name) is not click.ParameterSource.COMMANDLINE:
            continue
        if name == KAFKA_PARAM and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not is_secret(k)}
        flag = max(param.opts, key=len)
        if param.is_flag and isinstance(value, bool):
            if value:
                options.append(flag)
            elif param.secondary_opts:
                options.append(max(param.secondary_opts, key=len))
            continue
        for item in _values(value):
            options.extend([flag, item])
    return [ctx.info_name or "run", *options, "--", *arguments]


def _values(value: object) -> list[str]:
    if isinstance(value, dict):  # -X KEY=VALUE, parsed into a dict by its callback
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def secret_settings(ctx: click.Context) -> dict[str, str]:
    """The secret -X settings given on the command line, which `run_arguments` leaves out."""
    if ctx.get_parameter_source(KAFKA_PARAM) is not click.ParameterSource.COMMANDLINE:
        return {}
    given = ctx.params.get(KAFKA_PARAM) or {}
    return {k: v for k, v in given.items() if is_secret(k)}


def supervise(
    processes: int,
    arguments: Sequence[str],
    kill_after: float,
    secrets: Mapping[str, str] | None = None,
) -> int:
    """Run `parafka <arguments>` as `processes` supervised children; returns the exit code.

    `secrets` (-X settings) reach the children in their environment (readable by the same
    user only), never on their command lines."""
    command = [sys.executable, "-m", "parafka.cli", *arguments]
    env = None
    if secrets:
        env = {**os.environ, INHERITED_SECRETS: json.dumps(dict(secrets))}
    return Supervisor(command, processes, kill_after=kill_after, env=env).run()
