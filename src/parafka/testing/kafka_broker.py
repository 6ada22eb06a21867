"""Run Apache Kafka (one KRaft broker+controller) as a child process, for tests and benchmarks.

The broker's jars come from Maven Central (`org.apache.kafka:kafka_2.13` and its runtime
dependencies), resolved once by `mvn` into a cache outside the repository
(`~/.cache/parafka/kafka-<version>/libs`, or under `$PARAFKA_CACHE_DIR`); later starts reuse
it. Each start formats fresh storage in a temporary directory, so nothing outlives the broker.
Needs `java` (17+) and `mvn` on the PATH; without them `KafkaNotAvailable` says which is missing.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from parafka.core.errors import wire_name
from parafka.testing.broker import (
    BrokerNotAvailable,
    Spawned,
    _die_with_parent,
    create_topic,
    free_port,
    log_tail,
    wait_answering,
)

KAFKA_VERSION = "4.4.0"  # the newest 4.x served here; share groups need 4.2 or newer
_LOG4J_VERSION = "2.25.5"  # the slf4j binding matching the log4j-core Kafka 4.4 depends on
_HOST = "127.0.0.1"
_LOG_TAIL_LINES = 30
_PORT_ATTEMPTS = 3
_COMPLETE = ".complete"  # written last: a cache without it is a resolution cut short

# One combined broker+controller fit for tests: single replicas, few internal partitions
# (each is created on first use), no join delay, abandoned transactions aborted promptly,
# short KIP-848 heartbeats and sessions so `group.protocol=consumer` groups assign (and
# notice a killed member) in seconds.
_TEST_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    # A transaction left open by a killed producer is aborted once its transaction.timeout.ms
    # passes, checked this often (10 s by default): read_committed readers wait until then.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "200",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.session.timeout.ms": "6000",
    "group.share.min.heartbeat.interval.ms": "200",
    "group.share.heartbeat.interval.ms": "500",
    "group.share.min.session.timeout.ms": "6000",
    "group.share.session.timeout.ms": "6000",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
}
_JVM_OPTIONS = [
    "-Xmx512m",
    "-Xms64m",
    "-XX:+UseSerialGC",  # fewest GC threads: the machines have 2 cores
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
]
_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@wire_name("parafka.kafka_broker.KafkaNotAvailable")
class KafkaNotAvailable(BrokerNotAvailable):
    """Apache Kafka cannot be resolved or started here; the message says what to do."""


def cache_root() -> Path:
    """Where resolved Kafka versions are kept: `$PARAFKA_CACHE_DIR`, else the user cache."""
    explicit = os.environ.get("PARAFKA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parafka"


def missing_tools() -> list[str]:
    """The commands Apache Kafka needs here (`java`, `mvn`) that are not on the PATH."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def resolve_kafka(version: str = KAFKA_VERSION, timeout: float = 900.0) -> Path:
    """Return the folder of Kafka `version`'s jars, resolving them with Maven the first time.

    A lock file serialises concurrent callers (pytest-xdist workers): one resolves, the
    others wait and then reuse its result.
    """
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaNotAvailable(
            f"Apache Kafka {version} is not in the cache ({libs}) and 'mvn' is not on the PATH "
            "to resolve it: install Maven (apt-get install maven)"
        )
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (libs / _COMPLETE).exists():
            _resolve_into(version, libs, timeout)
    return libs


def _resolve_into(version: str, libs: Path, timeout: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="parafka-mvn-", dir=libs.parent))
    try:
        (work / "pom.xml").write_text(_pom(version), encoding="utf-8")
        target = work / "libs"
        command = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaNotAvailable(
                f"Maven took over {timeout:.0f}s to resolve org.apache.kafka:kafka_2.13:{version}; "
                "check that Maven Central is reachable and try again"
            ) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise KafkaNotAvailable(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
                f"(exit {done.returncode}); is that version on Maven Central? Last lines:\n{tail}"
            )
        (target / _COMPLETE).write_text(version, encoding="utf-8")
        shutil.rmtree(libs, ignore_errors=True)
        target.rename(libs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pom(version: str) -> str:
    def dependency(group: str, artifact: str, ver: str) -> str:
        return (
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{ver}</version></dependency>"
        )

    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>parafka.local</groupId>
  <artifactId>kafka-broker-{version}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    {dependency("org.apache.kafka", "kafka_2.13", version)}
    {dependency("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J_VERSION)}
  </dependencies>
</project>
"""


def _cluster_id() -> str:
    """A KRaft cluster id: a random UUID in Kafka's URL-safe base64 form (22 characters).

    Never one starting with '-' (1 in 64): the storage tool would read `-t -x...` as an
    option and fail, which is why Kafka's own `Uuid.randomUuid()` draws again too.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


class KafkaProcess(Spawned):
    """One Apache Kafka broker+controller on free loopback ports, storage in a temp dir.

    `start()` returns once the broker answers a metadata request; `stop()` kills its
    process group and removes its storage. The child also dies with Python (atexit, and on
    Linux the parent-death signal).
    """

    def __init__(self, version: str = KAFKA_VERSION, heap: str = "512m") -> None:
        self.version = version
        self.heap = heap
        self.port = 0
        self.controller_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """The file that receives the broker's log while it runs, else None."""
        return self._dir / "broker.log" if self._dir is not None else None

    def start(self, timeout: float = 60.0) -> None:
        """Resolve (if needed), format storage, spawn, and wait up to `timeout` s to serve."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"the Kafka broker is already running (pid {self._proc.pid})")
        if shutil.which("java") is None:
            raise KafkaNotAvailable(
                "Apache Kafka needs 'java' (17 or newer) on the PATH: install a JDK "
                "(apt-get install openjdk-17-jre-headless)"
            )
        libs = resolve_kafka(self.version)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.stop()
            self.port, self.controller_port = free_port(_HOST), free_port(_HOST)
            try:
                self._spawn(libs)
                self._wait_ready(time.monotonic() + timeout, timeout)
                return
            except KafkaNotAvailable as exc:
                in_use = "Address already in use" in str(exc)
                self.stop()
                if not in_use or attempt == _PORT_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 10.0) -> None:
        """Create topic `name` and wait until every partition has a leader, so the first
        produce or assignment right after does not meet an unknown partition."""
        create_topic(self.bootstrap_servers, name, partitions, timeout)
        probe = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        while True:
            found = probe.list_topics(name, timeout=timeout).topics.get(name)
            if (
                found is not None
                and found.error is None
                and len(found.partitions) == partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"topic {name!r} on {self.bootstrap_servers} has no leader for every "
                    f"partition after {timeout}s"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the broker's process group and remove its storage; safe to repeat."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # storage is thrown away:
                    os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown needed
            proc.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        assert self._dir is not None
        return [
            "java",
            f"-Xmx{self.heap}",
            *_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
            "-cp",
            str(libs / "*"),
            main,
            *args,
        ]

    def _spawn(self, libs: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="parafka-kafka-"))
        settings = {
            **_TEST_SETTINGS,
            "listeners": f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.quorum.voters": f"1@{_HOST}:{self.controller_port}",
            "log.dirs": str(self._dir / "data"),
        }
        properties = self._dir / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), "utf-8")
        (self._dir / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")
        assert self.log_path is not None
        with open(self.log_path, "wb") as log:
            formatted = subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "-c",
                    str(properties),
                    "-t",
                    _cluster_id(),
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if formatted.returncode != 0:
            raise KafkaNotAvailable(
                f"formatting Kafka storage failed (exit {formatted.returncode}); last lines "
                f"of its log:\n{self._log_tail()}"
            )
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(properties)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills all of it
                preexec_fn=_die_with_parent(),
            )
        atexit.register(self.stop)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._proc is not None
        wait_answering(
            self._proc,
            self.bootstrap_servers,
            deadline,
            lambda code: KafkaNotAvailable(
                f"the Kafka broker exited with code {code} before answering on "
                f"{self.bootstrap_servers}; last lines of its log:\n{self._log_tail()}"
            ),
            lambda: KafkaNotAvailable(
                f"the Kafka broker on {self.bootstrap_servers} did not answer within "
                f"{timeout}s; last lines of its log:\n{self._log_tail()}"
            ),
            backoff_ms=50,
        )

    def _log_tail(self) -> str:
        return log_tail(self.log_path, _LOG_TAIL_LINES)
