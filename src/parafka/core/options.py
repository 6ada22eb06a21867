"""Every setting of a ParallelConsumer, declared once: its default, choices, help and flags.

The rest is derived from `OPTIONS` or checked against it by tests/unit/core/test_options.py:
`ParallelConsumer`'s keyword defaults and `Settings`' field defaults (`default(name)`),
the `parafka run` options (`cli_common.setting_option`), and from those the PARAFKA_*
variables, the `--config` keys and `--print-config` (cli_config.py), and the table in
docs/usage.md. A value object keeps its own fields' defaults (`RetryPolicy`, as httpx's
`Timeout` does); the options it stands behind on the command line refer to them.

Pure data: no I/O, no click (the CLI turns each `kind` into a click type).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from parafka.core.codec import DEFAULT_MAX_METADATA_BYTES
from parafka.core.placement import PLACEMENTS
from parafka.core.retry import RetryPolicy
from parafka.core.scheduler import ORDERINGS
from parafka.core.stall import ON_STUCK

EXECUTORS = ("thread", "async", "process")
FAILURE_POLICIES = ("stop", "dead-letter", "skip")
# "consumer": a consumer group (partitions assigned, offsets committed); "share": a share
# group (KIP-932, experimental): records acquired one by one and acknowledged (share.py).
GROUP_TYPES = ("consumer", "share")
AUTO = "auto"  # concurrency="auto": a limit that follows the downstream (adaptive.py)

# What a value is, which says how the command line reads it (cli_common.click_type):
# text: a string; count: a whole number >= 1; size: a whole number >= 0; seconds: a number
# of seconds > 0; delay: seconds >= 0; port: 0-65535 (0: any free port); rate: records per
# second (N, N/s or N/min); concurrency: a whole number >= 1 or "auto"; choice: one of
# `choices`; flag: on when given; kafka: -X KEY=VALUE, repeatable (librdkafka settings).
Kind = Literal[
    "text",
    "count",
    "size",
    "seconds",
    "delay",
    "port",
    "rate",
    "concurrency",
    "choice",
    "flag",
    "kafka",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
_SAME = object()  # Option.cli_default: the same as the API's default
_RETRY = RetryPolicy()  # the retry defaults are RetryPolicy's own


@dataclass(frozen=True)
class Option:
    """One setting: a keyword argument of ParallelConsumer and its `parafka run` flags."""

    name: str  # the keyword argument (and Settings field)
    default: Any  # the keyword's default; None with `unset`: derived, or nothing
    help: str  # what it does (`parafka run --help`, the docs table)
    flags: tuple[str, ...] = ()  # `parafka run` flags; none: the API only
    kind: Kind = "text"
    choices: tuple[str, ...] = ()
    group: str = ""  # its heading in the docs table (docs/usage.md, "Every setting")
    unset: str = ""  # what a None default means, when it means more than "none"
    required: bool = False  # the CLI insists; the API checks it in Settings
    multiple: bool = False  # the flag repeats (a tuple of values)
    metavar: str | None = None
    cli_default: Any = _SAME  # where the command line's default is the value None stands for
    api: str = ""  # how the API says it when it is not a keyword of its own

    @property
    def command_default(self) -> Any:
        """The default of the `parafka run` flag."""
        return self.default if self.cli_default is _SAME else self.cli_default

    @property
    def keyword(self) -> bool:
        """A keyword argument of ParallelConsumer (else part of another: `api`)."""
        return not self.api


OPTIONS: tuple[Option, ...] = (
    # -- where to consume ----------------------------------------------------------------
    Option(
        "bootstrap_servers",
        None,
        "Kafka bootstrap servers, host:port[,...].",
        ("-b", "--bootstrap-servers"),
        group="Where to consume",
        required=True,
    ),
    Option(
        "group_id",
        None,
        "Consumer group id.",
        ("-g", "--group"),
        group="Where to consume",
        required=True,
    ),
    Option(
        "topics",
        (),
        "Topic to consume; repeat for several.",
        ("-t", "--topic"),
        group="Where to consume",
        required=True,
        multiple=True,
    ),
    Option(
        "group_type",
        "consumer",
        "consumer: a consumer group (partitions, offsets); share: a KIP-932 share group "
        "(experimental; needs --ordering unordered): records acquired one by one and "
        "acknowledged, several consumers per partition.",
        ("--group-type",),
        kind="choice",
        choices=GROUP_TYPES,
        group="Where to consume",
    ),
    Option(
        "kafka_config",
        None,
        "Any librdkafka setting, e.g. -X security.protocol=SASL_SSL; repeatable. One default "
        "differs from librdkafka's: auto.offset.reset=earliest (a new group starts at the "
        "oldest record; -X auto.offset.reset=latest for new records only). bootstrap.servers "
        "and group.id come from -b and -g.",
        ("-X",),
        kind="kafka",
        group="Where to consume",
        multiple=True,
        metavar="KEY=VALUE",
    ),
    Option(
        "connect_timeout",
        15.0,
        "Seconds to wait for the cluster before giving up.",
        ("--connect-timeout",),
        kind="seconds",
        group="Where to consume",
    ),
    Option(
        "kafka",
        None,
        "The Kafka client, a parafka.core.seam.Kafka: parafka.testing.InMemoryCluster() tests a "
        "handler without a broker.",
        group="Where to consume",
        unset="confluent-kafka",
    ),
    # -- how records are processed -------------------------------------------------------
    Option(
        "ordering",
        "key",
        "key: one record at a time per key; partition: per partition; unordered: no order.",
        ("--ordering",),
        kind="choice",
        choices=ORDERINGS,
        group="Processing",
    ),
    Option(
        "concurrency",
        16,
        "Records processed at the same time, or 'auto': a limit that follows the "
        "downstream's latency and failures, between --min-concurrency and --max-concurrency.",
        ("-c", "--concurrency"),
        kind="concurrency",
        group="Processing",
    ),
    Option(
        "min_concurrency",
        1,
        "With -c auto: the lowest limit.",
        ("--min-concurrency",),
        kind="count",
        group="Processing",
    ),
    Option(
        "max_concurrency",
        128,
        "With -c auto: the highest limit (the thread and async executors start this many workers).",
        ("--max-concurrency",),
        kind="count",
        group="Processing",
    ),
    Option(
        "executor",
        None,
        "Where handlers run: threads (I/O), async (an async def handler; the default for "
        "one), process (CPU-bound work on every core).",
        ("--executor",),
        kind="choice",
        choices=EXECUTORS,
        group="Processing",
        unset="thread",
    ),
    Option(
        "workers",
        None,
        "Worker processes for --executor process.",
        ("--workers",),
        kind="count",
        group="Processing",
        unset="one per usable core",
    ),
    Option(
        "deserializer",
        None,
        "Decode values before the handler (Record.data); an undecodable value is "
        "dead-lettered or stops the consumer, by --on-failure.",
        ("--deserializer",),
        group="Processing",
        metavar="bytes|text|json|MODULE:FUNCTION",
        cli_default="bytes",
    ),
    Option(
        "output_topic",
        None,
        "Topic for what the handler returns.",
        ("-o", "--output-topic"),
        group="Processing",
    ),
    Option(
        "exactly_once",
        False,
        "Commit outputs and offsets in one Kafka transaction (needs --output-topic).",
        ("--exactly-once",),
        kind="flag",
        group="Processing",
    ),
    Option(
        "batch_size",
        None,
        "Call the handler with a list of up to N records (a batch handler).",
        ("--batch-size",),
        kind="count",
        group="Processing",
    ),
    Option(
        "batch_wait",
        0.05,
        "Seconds a partial batch waits for more records.",
        ("--batch-wait",),
        kind="delay",
        group="Processing",
    ),
    # -- protecting the downstream -------------------------------------------------------
    Option(
        "rate",
        None,
        "Start at most N records a second in this instance (N/s, N/min).",
        ("--rate",),
        kind="rate",
        group="Protecting the downstream",
        unset="no limit",
    ),
    Option(
        "key_rate",
        None,
        "Start at most N records a second per key; a key over it waits, other keys go on.",
        ("--key-rate",),
        kind="rate",
        group="Protecting the downstream",
        unset="no limit",
    ),
    Option(
        "group_rate",
        None,
        "At most N records a second for the whole group: each instance takes the share of "
        "its assigned partitions, again at every rebalance.",
        ("--group-rate",),
        kind="rate",
        group="Protecting the downstream",
        unset="no limit",
    ),
    # -- failures ------------------------------------------------------------------------
    Option(
        "max_attempts",
        None,
        "Attempts per record (1: no retry); after the last one --on-failure decides.",
        ("--max-attempts",),
        kind="count",
        group="Failures and retries",
        cli_default=_RETRY.max_attempts,
    ),
    Option(
        "retry",
        None,
        "A RetryPolicy instead of max_attempts: backoff, and exceptions not worth retrying.",
        group="Failures and retries",
        unset="RetryPolicy()",
    ),
    Option(
        "retry_backoff",
        _RETRY.initial_backoff,
        "Wait before the first retry of a failed record; doubles each retry.",
        ("--retry-backoff",),
        kind="delay",
        group="Failures and retries",
        api="retry=RetryPolicy(initial_backoff=...)",
    ),
    Option(
        "max_backoff",
        _RETRY.max_backoff,
        "Longest wait between two attempts.",
        ("--max-backoff",),
        kind="delay",
        group="Failures and retries",
        api="retry=RetryPolicy(max_backoff=...)",
    ),
    Option(
        "no_retry",
        _RETRY.no_retry,
        "An exception not worth retrying (ValueError or module:Class): the record gives up "
        "at once. Repeatable.",
        ("--no-retry",),
        group="Failures and retries",
        multiple=True,
        metavar="EXCEPTION",
        api="retry=RetryPolicy(no_retry=...)",
    ),
    Option(
        "on_failure",
        None,
        "After the last attempt: stop without committing the record, dead-letter it, or "
        "skip it (counted).",
        ("--on-failure",),
        kind="choice",
        choices=FAILURE_POLICIES,
        group="Failures and retries",
        unset="stop; dead-letter with --dead-letter-topic",
    ),
    Option(
        "dead_letter_topic",
        None,
        "Where records go after their last attempt (with headers saying why).",
        ("--dead-letter-topic",),
        group="Failures and retries",
    ),
    Option(
        "retry_topic",
        None,
        "Park records that failed their quick attempts on this topic and retry them from "
        "it, so their partition moves on (their key's later records wait behind them).",
        ("--retry-topic",),
        group="Failures and retries",
        metavar="TOPIC",
    ),
    Option(
        "park_attempts",
        5,
        "Attempts of a parked record from the retry topic before --on-failure applies.",
        ("--park-attempts",),
        kind="count",
        group="Failures and retries",
    ),
    Option(
        "park_backoff",
        1.0,
        "Wait before a parked record's first attempt; each next one waits 4 times longer.",
        ("--park-backoff",),
        kind="delay",
        group="Failures and retries",
    ),
    # -- memory, commits and timeouts ----------------------------------------------------
    Option(
        "max_buffered",
        None,
        "Records held in memory before fetching stops (unset: the limit grows with the "
        "rate, to 50 ms of records, at most 10,000, and records waiting to start are kept "
        "to 5 ms of them).",
        ("--max-buffered",),
        kind="count",
        group="Memory, commits and shutdown",
        unset="max(1000, 10*C), growing",
    ),
    Option(
        "thread_placement",
        "together",
        "together: the control and output threads share one core (faster: they take turns "
        "with the GIL), moved when another process contends for it; os: the operating "
        "system places them.",
        ("--thread-placement",),
        kind="choice",
        choices=PLACEMENTS,
        group="Memory, commits and shutdown",
    ),
    Option(
        "commit_interval",
        1.0,
        "Seconds between offset commits.",
        ("--commit-interval",),
        kind="seconds",
        group="Memory, commits and shutdown",
    ),
    Option(
        "max_metadata_bytes",
        DEFAULT_MAX_METADATA_BYTES,
        "Room for the finished-offsets metadata in a commit (the broker's "
        "offset.metadata.max.bytes); 0 turns it off.",
        ("--max-metadata-bytes",),
        kind="size",
        group="Memory, commits and shutdown",
    ),
    Option(
        "shutdown_timeout",
        30.0,
        "Seconds running records get to finish on shutdown.",
        ("--shutdown-timeout",),
        kind="seconds",
        group="Memory, commits and shutdown",
    ),
    Option(
        "revoke_timeout",
        10.0,
        "On a rebalance, how long running records of revoked partitions get to finish.",
        ("--revoke-timeout",),
        kind="seconds",
        group="Memory, commits and shutdown",
    ),
    # -- monitoring ----------------------------------------------------------------------
    Option(
        "metrics_port",
        None,
        "Serve Prometheus /metrics and /healthz on this port (0: a free one, logged).",
        ("--metrics-port",),
        kind="port",
        group="Monitoring",
    ),
    Option(
        "metrics_host",
        "0.0.0.0",
        "Address /metrics listens on (0.0.0.0: every interface, for a scraper elsewhere; "
        "127.0.0.1: this machine only).",
        ("--metrics-host",),
        group="Monitoring",
    ),
    Option(
        "stuck_after",
        60.0,
        "/healthz fails when a record stays unfinished this long.",
        ("--stuck-after",),
        kind="seconds",
        group="Monitoring",
    ),
    Option(
        "on_stuck",
        "report",
        "A record over --stuck-after: report it (/healthz); restart-worker: replace its "
        "worker and retry it; park: replace its worker and give it to --on-failure at once "
        "(restart-worker and park need --executor process, or an async def handler).",
        ("--on-stuck",),
        kind="choice",
        choices=ON_STUCK,
        group="Monitoring",
    ),
    Option(
        "join_grace",
        60.0,
        "Out of the group this long: /healthz fails, and with --until-idle the run gives up "
        "(exit 1).",
        ("--join-grace",),
        kind="seconds",
        group="Monitoring",
    ),
    Option(
        "tracing",
        False,
        "OpenTelemetry: a span per attempt, its parent from the record's traceparent "
        "header, the context forwarded in outputs and dead letters (needs "
        "pip install 'parafka[otel]' and a tracer provider: docs/tracing.md).",
        ("--trace",),
        kind="flag",
        group="Monitoring",
    ),
)
_BY_NAME = {option.name: option for option in OPTIONS}


def option(name: str) -> Option:
    """The declaration of setting `name` (KeyError for a name that is none)."""
    return _BY_NAME[name]


def default(name: str) -> Any:
    """The declared default of setting `name`, for a keyword argument or a field."""
    return _BY_NAME[name].default
