"""`ParallelConsumer`: the public entry point. Validates settings and runs a ControlLoop."""

from __future__ import annotations

import contextlib
import inspect
import logging
import pickle
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any, Self

from parafka.core.deserializers import Deserializer
from parafka.core.deserializers import resolve as resolve_deserializer
from parafka.core.errors import ActionRefused, ConfigError
from parafka.core.lifecycle import Background
from parafka.core.options import default
from parafka.core.ratelimit import parse_rate
from parafka.core.recent import DeadLetterEvent
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import Ordering
from parafka.core.seam import Kafka
from parafka.core.stats import Stats
from parafka.engine.control import ControlLoop
from parafka.engine.settings import Settings
from parafka.engine.share import ShareLoop
from parafka.engine.steering import ActionEvent, Answer, Steering, target_name
from parafka.executors import Executor, Handler, ThreadExecutor, Work, make_executor
from parafka.executors.base import TraceConfig
from parafka.kafka.config import producer_config
from parafka.observe.health import Health, HealthPolicy, assess
from parafka.observe.monitor import MonitorServer, MonitorSettings, serve

log = logging.getLogger(__name__)


class ParallelConsumer(Background):
    """Consume `topics` in group `group_id` and run `handler` on records in parallel.

    Two ways to write it::

        ParallelConsumer(handle, bootstrap_servers="localhost:9092", group_id="g", topics="t")
        ParallelConsumer({"bootstrap.servers": "localhost:9092", "group.id": "g"}, handle,
                         topics="t")  # a confluent-kafka style settings dict first

    The handler gets a `Record` (with `batch_size`, a list of them) and may return None,
    an `Output`, bytes, str, a dict (JSON-encoded) or a list of those; outputs go to
    `output_topic` (or `Output.topic`) and a record counts as done only once its outputs
    are acknowledged. After its last attempt a record goes to `dead_letter_topic` when set;
    otherwise the consumer stops without committing it (`on_failure="skip"` skips it).

    `run()` blocks (SIGINT/SIGTERM stop it gracefully); `start()`/`stop()`/`join()` or
    `with ParallelConsumer(...) as pc:` run it in a background thread.

    Parameters, with their default and the `parafka run` flag that sets the same (each is
    declared once, in parafka.core.options; docs/usage.md, "Every setting", lists them):

    - handler: a function taking a Record, or "module:function" / "path/file.py:function"
      (required; CLI: the MODULE:FUNCTION argument). With a settings dict first, second.
    - bootstrap_servers: "host:port[,...]" (required unless the dict has bootstrap.servers;
      -b/--bootstrap-servers).
    - group_id: the consumer group (required unless the dict has group.id; -g/--group).
    - topics: a topic name or several; "^regex" subscribes by pattern (required; -t/--topic).
    - ordering="key": "key" one record at a time per key, "partition" per partition,
      "unordered" no order (--ordering).
    - concurrency=16: records processed at the same time (-c/--concurrency), or "auto": a
      limit that follows the downstream, growing while its latency stays near its
      unloaded value and shrinking when latency rises or records fail (a handler raises
      `parafka.Overloaded` on a 429/503) (-c auto).
    - min_concurrency=1: the lowest limit concurrency="auto" goes to (--min-concurrency).
    - max_concurrency=128: the highest limit concurrency="auto" goes to
      (--max-concurrency); the thread and asyncio executors start this many workers.
    - rate=None: records started per second by this consumer at most, a number or "100/s"
      or "6000/min" (--rate N/s).
    - key_rate=None: records started per second per key at most; a key over it waits while
      other keys go on (--key-rate N/s).
    - group_rate=None: records per second for the whole group: each consumer takes the share
      of its assigned partitions among all the partitions of their topics, again at every
      rebalance (--group-rate N/s).
    - output_topic=None: where returned outputs go (-o/--output-topic).
    - kafka_config=None: librdkafka settings for the clients parafka creates (-X KEY=VALUE).
      One default differs from librdkafka's: auto.offset.reset="earliest". bootstrap.servers
      and group.id come from the options above; a different value here is refused.
    - max_attempts=None (5): attempts per record, 1 for no retry (--max-attempts).
    - retry=None: a RetryPolicy instead of max_attempts, for backoff and no_retry
      (--retry-backoff 0.5, --max-backoff 30, --no-retry EXCEPTION).
    - executor=None ("thread", or "async" for an async def handler): "thread", "async" or
      "process" (--executor).
    - workers=None (one per usable core): worker processes of the process executor (--workers).
    - max_buffered=None (max(1000, 10 * concurrency)): records held in memory before
      fetching pauses (--max-buffered).
    - thread_placement="together": the control thread and the output thread share one core
      (they take turns with the GIL; moved when another process contends for it); "os":
      the operating system places them (--thread-placement).
    - commit_interval=1.0: seconds between offset commits (--commit-interval).
    - shutdown_timeout=30.0: seconds running records get to finish on stop
      (--shutdown-timeout).
    - revoke_timeout=10.0: seconds running records of revoked partitions get to finish in
      a rebalance (--revoke-timeout).
    - connect_timeout=15.0: seconds to wait for the cluster (--connect-timeout); a refused
      connection fails after about 2 s.
    - max_metadata_bytes=4096: room for the finished-offsets metadata in a commit; 0 turns
      it off (--max-metadata-bytes).
    - batch_size=None: call the handler with a list of up to this many records
      (--batch-size).
    - batch_wait=0.05: seconds a partial batch waits for more records (--batch-wait).
    - dead_letter_topic=None: where records go after their last attempt
      (--dead-letter-topic).
    - retry_topic=None: park records that failed their quick attempts on this topic, so
      their partition moves on; later records of their key are parked behind them, and
      they are retried from it with growing delays (--retry-topic). Needs ordering "key"
      or "unordered".
    - park_attempts=5: attempts of a parked record, taken from the retry topic, before the
      failure policy (e.g. the dead-letter topic) gets it (--park-attempts).
    - park_backoff=1.0: seconds a parked record waits before its first attempt from the
      retry topic; each next wait is 4 times longer, at most 300 s (--park-backoff).
    - on_failure=None ("dead-letter" with a dead-letter topic, else "stop"): "stop",
      "dead-letter" or "skip" (--on-failure).
    - deserializer=None (bytes): "text", "json", "module:function" or a callable; sets
      Record.data (--deserializer).
    - exactly_once=False: outputs and offsets in one transaction (--exactly-once).
    - metrics_port=None: serve Prometheus /metrics and /healthz on this port; 0 picks a
      free one (--metrics-port).
    - metrics_host="0.0.0.0": the address /metrics listens on (--metrics-host).
    - stuck_after=60.0: /healthz fails when a record stays unfinished this long
      (--stuck-after).
    - on_stuck="report": what to do with a record that runs longer than stuck_after:
      "report" it (/healthz), "restart-worker" (process executor: replace its worker,
      asyncio: cancel the call; then retry it) or "park" (the same, then give the record
      to the failure policy at once, e.g. the dead-letter topic) (--on-stuck).
    - join_grace=60.0: /healthz fails when out of the group this long; with `until_idle`
      the run gives up (NotAssigned) when no partition came in that time (--join-grace).
    - group_type="consumer": "consumer" for a consumer group; "share" (experimental, the
      client's share consumer is a preview) for a KIP-932 share group: records are
      acquired one by one and acknowledged, several consumers can share one partition;
      needs ordering="unordered", no exactly_once (--group-type).
    - tracing=False: an OpenTelemetry span per attempt ("process <topic>", its parent from
      the record's `traceparent` header; the handler's own spans are its children in every
      executor) and the context forwarded in outputs' and dead letters' headers; needs
      `pip install 'parafka[otel]'` and a tracer provider (docs/tracing.md) (--trace).
    - kafka=None (confluent-kafka): the Kafka client to use, a `parafka.core.seam.Kafka`; pass
      `parafka.testing.InMemoryCluster()` to test a handler without a broker (API only).
    """

    def __init__(
        self,
        handler: Handler | str | Mapping[str, Any],
        config_handler: Handler | str | None = None,
        /,
        *,
        bootstrap_servers: str | None = default("bootstrap_servers"),
        group_id: str | None = default("group_id"),
        topics: Iterable[str] | str = default("topics"),
        ordering: Ordering = default("ordering"),
        concurrency: int | str = default("concurrency"),
        min_concurrency: int = default("min_concurrency"),
        max_concurrency: int = default("max_concurrency"),
        rate: float | str | None = default("rate"),
        key_rate: float | str | None = default("key_rate"),
        group_rate: float | str | None = default("group_rate"),
        output_topic: str | None = default("output_topic"),
        kafka_config: Mapping[str, Any] | None = default("kafka_config"),
        max_attempts: int | None = default("max_attempts"),
        retry: RetryPolicy | None = default("retry"),
        executor: str | None = default("executor"),
        workers: int | None = default("workers"),
        max_buffered: int | None = default("max_buffered"),
        thread_placement: str = default("thread_placement"),
        commit_interval: float = default("commit_interval"),
        shutdown_timeout: float = default("shutdown_timeout"),
        revoke_timeout: float = default("revoke_timeout"),
        connect_timeout: float = default("connect_timeout"),
        max_metadata_bytes: int = default("max_metadata_bytes"),
        batch_size: int | None = default("batch_size"),
        batch_wait: float = default("batch_wait"),
        dead_letter_topic: str | None = default("dead_letter_topic"),
        on_failure: str | None = default("on_failure"),
        retry_topic: str | None = default("retry_topic"),
        park_attempts: int = default("park_attempts"),
        park_backoff: float = default("park_backoff"),
        deserializer: Deserializer | None = default("deserializer"),
        exactly_once: bool = default("exactly_once"),
        metrics_port: int | None = default("metrics_port"),
        metrics_host: str = default("metrics_host"),
        stuck_after: float = default("stuck_after"),
        on_stuck: str = default("on_stuck"),
        join_grace: float = default("join_grace"),
        group_type: str = default("group_type"),
        tracing: bool = default("tracing"),
        kafka: Kafka | None = default("kafka"),
    ) -> None:
        if isinstance(handler, Mapping):  # ParallelConsumer({"bootstrap.servers": ...}, h)
            if config_handler is None:
                raise ConfigError(
                    "ParallelConsumer(config, handler, topics=...): the handler is missing "
                    "after the settings dict"
                )
            if kafka_config is not None:
                raise ConfigError(
                    "client settings given twice (a settings dict first and kafka_config=): "
                    "merge them into one"
                )
            kafka_config = dict(handler)
            bootstrap_servers = bootstrap_servers or str(kafka_config.get("bootstrap.servers", ""))
            group_id = group_id or str(kafka_config.get("group.id", ""))
            handler = config_handler
        elif config_handler is not None:
            raise ConfigError(
                f"unexpected second argument {config_handler!r}: it is only for "
                "ParallelConsumer(settings_dict, handler, topics=...); otherwise pass "
                "settings by name (bootstrap_servers=, group_id=, topics=)"
            )
        function, executor = _resolve_handler(handler, executor)
        if retry is None:
            retry = (
                RetryPolicy() if max_attempts is None else RetryPolicy(max_attempts=max_attempts)
            )
        elif max_attempts is not None:
            raise ConfigError("pass either max_attempts= or retry=RetryPolicy(...), not both")
        self.handler = function
        self._work_handler = handler if executor == "process" else function
        self.settings = Settings(
            bootstrap_servers=bootstrap_servers or "",
            group_id=group_id or "",
            topics=(topics,) if isinstance(topics, str) else tuple(topics),
            ordering=ordering,
            concurrency=concurrency,
            min_concurrency=min_concurrency,
            max_concurrency=max_concurrency,
            rate=_rate("rate", rate),
            key_rate=_rate("key_rate", key_rate),
            group_rate=_rate("group_rate", group_rate),
            output_topic=output_topic,
            kafka_config=dict(kafka_config or {}),
            retry=retry,
            executor=executor,
            workers=workers,
            max_buffered=max_buffered,
            thread_placement=thread_placement,
            commit_interval=commit_interval,
            shutdown_timeout=shutdown_timeout,
            revoke_timeout=revoke_timeout,
            connect_timeout=connect_timeout,
            join_grace=join_grace,
            max_metadata_bytes=max_metadata_bytes,
            batch_size=batch_size,
            batch_wait=batch_wait,
            dead_letter_topic=dead_letter_topic,
            on_failure=on_failure,
            retry_topic=retry_topic,
            park_attempts=park_attempts,
            park_backoff=park_backoff,
            deserializer=deserializer,
            exactly_once=exactly_once,
            group_type=group_type,
            on_stuck=on_stuck,
            tracing=tracing,
        )
        if group_type == "share" and kafka is not None:
            raise ConfigError(
                f"group_type='share' runs on Kafka only: drop kafka={kafka!r} (the in-memory "
                "cluster has no share groups) or use group_type='consumer'"
            )
        resolve_deserializer(deserializer)  # a bad name fails here, not in a worker
        if executor == "process" and callable(deserializer):
            _check_picklable(deserializer, "deserializer")
        patient = frozenset({retry_topic}) if retry_topic is not None else frozenset()
        self._health_policy = HealthPolicy(stuck_after, join_grace, patient)
        self._monitoring = (
            None
            if metrics_port is None
            else MonitorSettings(metrics_port, metrics_host, self._health_policy)
        )
        self._monitor: MonitorServer | None = None
        self._kafka = kafka
        self._loop: ControlLoop | ShareLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._result: Stats | None = None

    def _new_loop(self) -> ControlLoop | ShareLoop:
        if self._loop is not None:
            raise RuntimeError("this ParallelConsumer already ran; create a new one")
        s = self.settings
        producer = None
        if s.executor == "process" and not s.exactly_once:  # workers produce their outputs
            producer = producer_config(s.bootstrap_servers, s.kafka_config)
        work = Work(
            self._work_handler,
            s.output_topic,
            s.batch_size,
            producer,
            ordering=s.ordering,
            deserializer=s.deserializer,
            trace=TraceConfig(s.group_id) if s.tracing else None,
        )
        executor = self._executor()
        if s.on_stuck != "report":
            from parafka.core.stall import StuckPolicy

            executor.stuck = StuckPolicy(self._health_policy.stuck_after, s.on_stuck)
        if self._monitoring is not None:
            from parafka.observe.metrics import new_timings

            executor.timings = new_timings()
        if s.group_type == "share":
            self._loop = ShareLoop(s, work, executor)
        else:
            self._loop = ControlLoop(s, work, executor, kafka=self._kafka)
        return self._loop

    def _serve_monitor(self, loop: ControlLoop | ShareLoop) -> None:
        """Start `/metrics` and `/healthz` when asked for (ConfigError if the port is taken)."""
        if self._monitoring is None:
            return
        s = self.settings
        info = {"group": s.group_id, "ordering": s.ordering, "executor": s.executor}
        self._monitor = serve(self._monitoring, loop.stats, loop.clock, loop.executor.timings, info)

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def _executor(self) -> Executor:
        s = self.settings
        return make_executor(s.executor, s.concurrency_cap, s.workers)

    # -- foreground -------------------------------------------------------------------
    def run(self, until_idle: float | None = None) -> Stats:
        """Consume until stopped (or idle for `until_idle` seconds); returns final stats.

        Raises RecordFailed when a record failed its last attempt (after committing
        everything that was done) and BrokerUnreachable when the cluster does not answer.
        """
        loop = self._new_loop()
        self._serve_monitor(loop)
        try:
            with _StopOnSignals(self):
                return _run(loop, until_idle)
        finally:
            self._stop_monitor()

    # -- background -------------------------------------------------------------------
    def start(self, until_idle: float | None = None) -> Self:
        """Run in a background thread; returns once the consumer has subscribed."""
        loop = self._new_loop()
        self._serve_monitor(loop)

        def target() -> None:
            try:
                self._result = _run(loop, until_idle)
            except BaseException as exc:
                self._error = exc
                loop.running.set()
            finally:
                self._stop_monitor()

        name = "parafka-run" if _beside(loop) else "parafka-control"  # the loop's or its waiter
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()
        loop.running.wait()
        return self

    def stop(self, drain: bool = True, wake: bool = True) -> None:
        """Stop consuming; running handlers finish (bounded) unless drain=False. Thread-safe.

        wake=False, for signal handlers: only set flags (no lock taken); the loop notices
        within 50 ms."""
        if self._loop is not None:
            self._loop.stop(drain, wake)

    def join(self, timeout: float | None = None) -> Stats | None:
        """Wait for the background run to end; re-raises its error. None on timeout."""
        if self._thread is None:
            raise RuntimeError("join() needs start() first")
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._result

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def recent_dead_letters(self) -> tuple[DeadLetterEvent, ...]:
        """The last records given up to the dead-letter topic (at most 50), oldest first."""
        return self._loop.recent_dead_letters.snapshot() if self._loop is not None else ()

    def control(
        self,
        action: str,
        topic: str,
        partition: int,
        offset: int | None = None,
        *,
        timeout: float = 5.0,
    ) -> Answer:
        """An operator's action on the running consumer, applied on its control thread:
        "pause" or "resume" partition `topic`/`partition`, "skip" the record at `offset`
        (it counts done without its handler, or now if running) or "park" it (to the
        dead-letter topic). Thread-safe; waits about `timeout` seconds at most. The answer's
        `result` is "ok", "refused" (with why), "failed" or "timeout"; every action is
        logged, counted and listed by `control_actions()`."""
        steering = self._steering()
        if steering is None:
            return Answer("refused", "the consumer is not running a consumer group loop")
        return steering.request(action, topic, partition, offset, timeout)

    def replay_dead_letters(self, records: Iterable[tuple[str, int, int]]) -> Answer:
        """Replay the dead letters this group wrote for `records` (source topic, partition,
        offset) to their source topics, as `parafka dlq replay` does. Blocking (it reads the
        dead-letter topic to its end); logged and counted like `control`."""
        wanted = list(records)
        names = ", ".join(target_name(*r) for r in wanted) or "nothing"
        steering = self._steering()
        if steering is None:
            return Answer("refused", "the consumer is not running a consumer group loop")
        from parafka.engine.steering import replay

        try:
            answer = replay(self.settings, wanted)
        except ActionRefused as exc:
            answer = Answer("refused", str(exc))
        except Exception as exc:  # a Kafka or input failure: answered, never raised
            answer = Answer("failed", f"{type(exc).__name__}: {exc}")
        steering.record("replay", names, answer)
        return answer

    def control_denied(self, action: str, source: str, why: str) -> None:
        """For the dashboard: log and count a control request refused by a security rule."""
        steering = self._steering()
        if steering is not None:
            steering.record(action, source, Answer("denied", why))

    def control_actions(self) -> tuple[ActionEvent, ...]:
        """The last operator actions (at most 50), oldest first."""
        steering = self._steering()
        return steering.events() if steering is not None else ()

    def _steering(self) -> Steering | None:
        loop = self._loop
        return loop.steering if isinstance(loop, ControlLoop) else None

    def stats(self) -> Stats:
        """A snapshot of counters and per-partition offsets (refreshed 4 times a second)."""
        return self._loop.stats() if self._loop is not None else Stats()

    def health(self) -> Health:
        """Whether the consumer is healthy (what `/healthz` answers), from its latest stats."""
        if self._loop is None:
            return Health(True, {"status": "not started"})
        return assess(self._loop.stats(), self._loop.clock(), self._health_policy)

    @property
    def metrics_port(self) -> int | None:
        """The port `/metrics` and `/healthz` are served on while running (None: not served)."""
        return self._monitor.port if self._monitor is not None else None

    def _leave(self) -> None:
        """Leaving `with`: stop, then wait for the drain and the final commit."""
        self.stop()
        self.join()


def _run(loop: ControlLoop | ShareLoop, until_idle: float | None) -> Stats:
    """Run the loop. When its handlers may run on the control thread (threads.py), on a
    thread of its own: a handler that hangs there leaves the loop to the stand-by thread
    (handover.py), and this thread still returns once the run ends."""
    if not _beside(loop):
        return loop.run(until_idle)
    assert isinstance(loop, ControlLoop) and isinstance(loop.executor, ThreadExecutor)
    loop.executor.hand_over = loop.take_over
    control = threading.Thread(
        target=_quietly, args=(loop.run, until_idle), name="parafka-control", daemon=True
    )
    control.start()
    try:
        while not loop.finished.wait(0.2):
            pass
    except BaseException:  # KeyboardInterrupt here, with no signal handler of ours
        loop.stop(drain=False)
        loop.finished.wait(loop.settings.shutdown_timeout + 5.0)
        raise
    return loop.result()


def _beside(loop: ControlLoop | ShareLoop) -> bool:
    """The loop runs on a thread of its own: its handlers may run on the control thread."""
    if not isinstance(loop, ControlLoop) or not isinstance(loop.executor, ThreadExecutor):
        return False
    return loop.work.batch_size is None  # batches never run on the control thread


def _quietly(run: Callable[[float | None], Stats], until_idle: float | None) -> None:
    with contextlib.suppress(BaseException):  # the loop keeps it for result()
        run(until_idle)


class _StopOnSignals:
    """SIGINT/SIGTERM stop the consumer gracefully; a second signal shortens the drain."""

    def __init__(self, consumer: ParallelConsumer) -> None:
        self.consumer = consumer
        self.previous: dict[int, Any] = {}
        self.received = 0

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received += 1
        name = signal.Signals(signum).name
        if self.received == 1:
            log.info("%s received: finishing running records, then committing", name)
            self.consumer.stop(drain=True, wake=False)
        else:
            log.warning("%s received again: stopping now; unfinished records are redelivered", name)
            self.consumer.stop(drain=False, wake=False)

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _resolve_handler(handler: Handler | str, executor: str | None) -> tuple[Handler, str]:
    """The callable to run and the executor to run it with.

    A "module:function" (or "path/file.py:function") string is loaded here; process
    workers load it again themselves. An async function picks the asyncio executor.
    """
    if isinstance(handler, str):
        from parafka.core.loader import load_target

        function: Handler = load_target(handler)
    else:
        function = handler
    if not callable(function):
        raise ConfigError(f"handler {handler!r} is not callable: pass a function taking a Record")
    _check_signature(function)
    is_async = inspect.iscoroutinefunction(function)
    chosen = executor or ("async" if is_async else "thread")
    name = getattr(function, "__qualname__", repr(function))
    if is_async and chosen != "async":
        raise ConfigError(
            f"handler {name!r} is an async function: use executor='async' (CLI --executor "
            "async) or leave the executor unset"
        )
    if chosen == "async" and not is_async:
        raise ConfigError(
            f"executor 'async' needs an async def handler; {name!r} is a plain function: "
            "use executor='thread' or 'process'"
        )
    if chosen == "process" and not isinstance(handler, str):
        _check_picklable(handler, "handler")
    return function, chosen


def _check_signature(function: Handler) -> None:
    """A handler is called with one argument (a Record, or a list with batch_size): one
    that cannot be would fail on every record, so it is refused before anything runs."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some built-ins have no signature: let them be
        return
    try:
        signature.bind(None)
    except TypeError:
        name = getattr(function, "__qualname__", repr(function))
        code = getattr(function, "__code__", None)
        at = f" (at {code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        params = ", ".join(
            str(p.replace(annotation=p.empty)) for p in signature.parameters.values()
        )
        raise ConfigError(
            f"handler {name}({params}) cannot be called with one record{at}: parafka calls "
            "handler(record) (a list of records with batch_size); give the other "
            "parameters defaults or remove them"
        ) from None


def _rate(name: str, value: float | str | None) -> float | None:
    """Records per second from a number, "100/s" or "6000/min"."""
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        flag = name.replace("_", "-")
        raise ConfigError(f"{name}={value!r}: {exc} (CLI --{flag} N/s)") from None


def _check_picklable(function: object, what: str) -> None:
    """Process workers import the function by name: it must live at module level."""
    try:
        pickle.dumps(function)
    except (pickle.PicklingError, AttributeError, TypeError):
        name = getattr(function, "__qualname__", repr(function))
        raise ConfigError(
            f"executor 'process' needs a {what} the worker processes can import: "
            f"{name!r} is not a module-level function; move it to a module or pass "
            "'module:function'"
        ) from None
