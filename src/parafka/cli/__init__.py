"""The `parafka` command line: `parafka run MODULE:FUNCTION ...`, `lag`, `broker`,
`produce`, `tail` and more.

Exit codes: 0 clean, 1 runtime failure, 2 usage or configuration error. A mistake the
user can fix is reported as one `parafka: error: ...` line, never a traceback.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Sequence

import click
from confluent_kafka import KafkaException

from parafka import build
from parafka.cli.common import (
    Processes,
    bootstrap_option,
    connect_timeout_option,
    kafka_config_option,
    log_level_option,
    setting_option,
)
from parafka.cli.common import setup_logging as _setup_logging
from parafka.cli.config import ParafkaGroup
from parafka.cli.dlq import dlq
from parafka.cli.produce import produce, tail
from parafka.cli.sizing import partitions
from parafka.cli.top import top
from parafka.core.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    ParafkaError,
)
from parafka.core.seam import ClientError
from parafka.core.stats import Activity
from parafka.kafka.config import kafka_error_text as _kafka_text
from parafka.testing.broker import BrokerNotAvailable, log_tail

_BROKER_LOG_LINES = 10


# Every command gets PARAFKA_* variables, --config FILE and --print-config (cli_config.py).
@click.group(cls=ParafkaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="parafka", message=f"%(prog)s, version %(version)s ({build.summary()})"
)
def cli() -> None:
    """parafka: process Kafka records in parallel with per-key order and exact offsets."""


cli.add_command(partitions)
cli.add_command(dlq)
cli.add_command(produce)
cli.add_command(tail)
cli.add_command(top)


@cli.command(
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def demo() -> None:
    """The demo moved out of the library (issue 17): say where it is."""
    raise ConfigError(
        "the demo is not part of the installed library: run `make demo` (or "
        "`python -m examples.demo`) from the root of a parafka checkout"
    )


# The consumer's settings are declared in options.py (flags, defaults, choices, help);
# the other options belong to the command.
@cli.command()
@click.argument("target", metavar="MODULE:FUNCTION")
@setting_option("bootstrap_servers")
@setting_option("group_id")
@setting_option("topics")
@setting_option("ordering")
@setting_option("group_type")
@setting_option("concurrency")
@setting_option("min_concurrency")
@setting_option("max_concurrency")
@setting_option("rate")
@setting_option("key_rate")
@setting_option("group_rate")
@setting_option("output_topic")
@setting_option("executor")
@setting_option("workers")
@setting_option("batch_size")
@setting_option("batch_wait")
@setting_option("max_attempts")
@setting_option("retry_backoff")
@setting_option("max_backoff")
@setting_option("no_retry")
@setting_option("dead_letter_topic")
@setting_option("retry_topic")
@setting_option("park_attempts")
@setting_option("park_backoff")
@setting_option("on_failure")
@setting_option("deserializer")
@setting_option("exactly_once")
@setting_option("tracing")
@setting_option("kafka_config")
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Exit 0 once no record arrived for SECONDS and all work is committed.",
)
@setting_option("max_buffered")
@setting_option("thread_placement")
@setting_option("commit_interval")
@setting_option("shutdown_timeout")
@setting_option("connect_timeout")
@setting_option("max_metadata_bytes")
@setting_option("metrics_port")
@setting_option("metrics_host")
@setting_option("stuck_after")
@setting_option("on_stuck")
@setting_option("join_grace")
@setting_option("revoke_timeout")
@log_level_option
@click.option(
    "--processes",
    type=Processes(),
    default=1,
    show_default=True,
    help="Consumer processes in the group, each restarted if it dies; 'auto': one per core "
    "this process may use (members beyond the partition count wait as standbys).",
)
@click.option(
    "--no-dashboard",
    is_flag=True,
    default=False,
    help="Plain log lines instead of the live terminal view (plain anyway when stderr is "
    "not a terminal).",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve the web dashboard (live charts) on this port; 0 picks a free one (logged).",
)
@click.option(
    "--dashboard-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the web dashboard listens on (0.0.0.0: every interface).",
)
@click.option(
    "--control-token",
    default=None,
    metavar="TOKEN",
    help="Turn on the dashboard's control actions (pause, resume, skip, park, replay); each "
    "request must carry this token (Authorization: Bearer TOKEN). Needs --dashboard-port; "
    "prefer PARAFKA_CONTROL_TOKEN to keep it off the command line.",
)
def run(
    target: str,
    bootstrap_servers: str,
    group_id: str,
    topics: tuple[str, ...],
    ordering: str,
    group_type: str,
    concurrency: int | str,
    min_concurrency: int,
    max_concurrency: int,
    rate: float | None,
    key_rate: float | None,
    group_rate: float | None,
    output_topic: str | None,
    executor: str | None,
    workers: int | None,
    batch_size: int | None,
    batch_wait: float,
    max_attempts: int,
    retry_backoff: float,
    max_backoff: float,
    no_retry: tuple[str, ...],
    dead_letter_topic: str | None,
    on_failure: str | None,
    retry_topic: str | None,
    park_attempts: int,
    park_backoff: float,
    deserializer: str,
    exactly_once: bool,
    tracing: bool,
    kafka_config: dict[str, str],
    until_idle: float | None,
    max_buffered: int | None,
    thread_placement: str,
    commit_interval: float,
    shutdown_timeout: float,
    connect_timeout: float,
    max_metadata_bytes: int,
    metrics_port: int | None,
    metrics_host: str,
    stuck_after: float,
    on_stuck: str,
    join_grace: float,
    revoke_timeout: float,
    log_level: str,
    processes: int,
    no_dashboard: bool,
    dashboard_port: int | None,
    dashboard_host: str,
    control_token: str | None,
) -> None:
    """Run HANDLER (module:function or path/to/file.py:function) on every record."""
    from parafka.core.gctuning import tune_gc
    from parafka.core.loader import load_exception, load_target
    from parafka.core.retry import RetryPolicy
    from parafka.engine.consumer import ParallelConsumer

    # Process workers import the handler themselves, from the same target.
    handler = target if executor == "process" else load_target(target)
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        topics=topics,
        ordering=ordering,  # type: ignore[arg-type]  # click.Choice checked it
        group_type=group_type,
        concurrency=concurrency,
        min_concurrency=min_concurrency,
        max_concurrency=max_concurrency,
        rate=rate,
        key_rate=key_rate,
        group_rate=group_rate,
        output_topic=output_topic,
        executor=executor,
        workers=workers,
        batch_size=batch_size,
        batch_wait=batch_wait,
        kafka_config=kafka_config,
        retry=RetryPolicy(
            max_attempts=max_attempts,
            initial_backoff=retry_backoff,
            max_backoff=max_backoff,
            no_retry=tuple(load_exception(name) for name in no_retry),
        ),
        dead_letter_topic=dead_letter_topic,
        on_failure=on_failure,
        retry_topic=retry_topic,
        park_attempts=park_attempts,
        park_backoff=park_backoff,
        deserializer=deserializer,
        exactly_once=exactly_once,
        tracing=tracing,
        max_buffered=max_buffered,
        thread_placement=thread_placement,
        commit_interval=commit_interval,
        shutdown_timeout=shutdown_timeout,
        connect_timeout=connect_timeout,
        max_metadata_bytes=max_metadata_bytes,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        stuck_after=stuck_after,
        on_stuck=on_stuck,
        join_grace=join_grace,
        revoke_timeout=revoke_timeout,
    )
    if control_token is not None and dashboard_port is None:
        raise ConfigError(
            "--control-token turns on the dashboard's control actions: give --dashboard-port "
            "too (the control plane is served there)"
        )
    if processes > 1 and metrics_port is not None:
        raise ConfigError(
            f"--metrics-port {metrics_port} serves one process: with --processes {processes} "
            "the children would share it; run one `parafka run` per port instead"
        )
    if processes > 1:  # arguments are valid: run them as ordinary `parafka run` children
        from parafka.cli.supervisor import run_arguments, secret_settings, supervise

        if dashboard_port is not None:
            raise ConfigError(
                f"--dashboard-port {dashboard_port} shows one process: with --processes "
                f"{processes} the children would share it; run one `parafka run` per port"
            )
        ctx = click.get_current_context()
        kill_after = shutdown_timeout + 60  # generous: a child is killed only if it hangs
        children = run_arguments(ctx, reset="processes")
        children.insert(1, "--no-dashboard")  # N live panels would draw over each other
        click.echo(f"parafka: {processes} consumer processes in group {group_id}", err=True)
        ctx.exit(supervise(processes, children, kill_after, secret_settings(ctx)))
    _setup_logging(log_level)
    tune_gc()  # this process only consumes: collect garbage less often (gctuning.py)
    started = time.monotonic()
    activity = Activity()
    try:
        from parafka.cli.views.run import run_with_views

        stats = run_with_views(
            consumer,
            until_idle,
            live=not no_dashboard,
            dashboard_port=dashboard_port,
            dashboard_host=dashboard_host,
            control_token=control_token,
            title=f"parafka · group {group_id} · {', '.join(topics)}",
            activity=activity,
        )
    except KafkaException as exc:
        raise ParafkaError(f"Kafka client error: {_kafka_text(exc)}") from None
    except ClientError as exc:
        raise ParafkaError(f"Kafka client error: {exc}") from None
    elapsed = time.monotonic() - started
    activity.processed = max(activity.processed, stats.processed)
    click.echo(
        f"parafka: {activity.summary(elapsed)} ({stats.failed} failures, {stats.retried} "
        f"retries, {stats.dead_lettered} dead-lettered, {stats.skipped_after_failure} skipped "
        f"after failure, {stats.skipped_already_done} skipped as already done)",
        err=True,
    )


@cli.command()
@bootstrap_option
@setting_option("group_id")
@click.option(
    "-t",
    "--topic",
    "topics",
    multiple=True,
    help="Topic to report; repeat for several  [default: the topics the group committed on]",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@kafka_config_option
@connect_timeout_option
def lag(
    bootstrap_servers: str,
    group_id: str,
    topics: tuple[str, ...],
    as_json: bool,
    kafka_config: dict[str, str],
    connect_timeout: float,
) -> None:
    """Print the lag of any consumer group per partition (log end - committed offset).

    For a parafka group, DONE-NOT-COMMITTED counts the records above the committed offset
    that were already finished (read from the commit metadata). Exit codes: 0 printed;
    1 the group has no committed offsets, a topic does not exist or Kafka is unreachable;
    2 usage error.
    """
    from parafka.kafka.grouplag import read_group_lag
    from parafka.observe.lagview import as_json as lag_json
    from parafka.observe.lagview import as_text, print_table

    rows = read_group_lag(bootstrap_servers, group_id, topics, kafka_config, connect_timeout)
    if as_json:
        click.echo(lag_json(group_id, rows))
    elif sys.stdout.isatty():
        print_table(group_id, rows)
    else:
        click.echo(as_text(group_id, rows))


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9092,
    show_default=True,
    help="Port to listen on (127.0.0.1).",
)
def broker(port: int) -> None:
    """Run the local development broker (memory only) in the foreground."""
    from parafka.testing.broker import BrokerProcess

    process = BrokerProcess(port=port)
    # SIGTERM takes the Ctrl+C path. (Stopping the child from inside a signal handler
    # would re-enter Popen.wait, which holds a lock while the main thread waits.)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        process.start()
        click.echo(f"local broker listening; bootstrap servers: {process.bootstrap_servers}")
        click.echo("press Ctrl+C to stop (data is kept in memory only)")
        code = process.wait()
        raise ParafkaError(
            f"the local broker on {process.bootstrap_servers} exited by itself with code "
            f"{code}; last lines of its log:\n{log_tail(process.log_path, _BROKER_LOG_LINES)}"
        )
    except KeyboardInterrupt:
        pass
    finally:
        # Further signals must not cut the stop short and leave the broker running.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            process.stop()
        finally:
            for sig, handler in previous.items():
                if handler is not None:  # None: not set from Python; leave it
                    signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="parafka")), err=True)
        return EXIT_USAGE
    return run_command(cli, args, "parafka")


def run_command(command: click.Command, args: list[str], prog_name: str) -> int:
    """Run a click command the way `parafka` runs its own: a mistake is one
    `parafka: error: ...` line and exit code 2, a runtime failure exit code 1 (the demo's
    command line, outside the library, runs through it too)."""
    try:
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _error(f"{_usage_text(exc)}{hint}")
        return EXIT_USAGE
    except click.ClickException as exc:
        _error(exc.format_message())
        return EXIT_FAILURE
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (ParafkaError, BrokerNotAvailable) as exc:
        # Runtime failures may carry detail lines (a broker's log); the first line says it.
        headline, _, detail = str(exc).partition("\n")
        _error(headline)
        if detail:
            click.echo(detail, err=True)
        return EXIT_FAILURE
    except (click.Abort, KeyboardInterrupt):
        _error("interrupted")
        return EXIT_INTERRUPTED
    # Outside standalone mode click returns the code of --help/--version as an int.
    return result if isinstance(result, int) else EXIT_OK


def _usage_text(exc: click.UsageError) -> str:
    text = exc.format_message()
    if isinstance(exc, click.MissingParameter) and isinstance(exc.param, click.Option):
        envvar = exc.param.envvar
        if isinstance(envvar, str) and envvar not in text:
            text = f"{text.rstrip('.')} (or set {envvar})."
    return text


def _error(message: str) -> None:
    """Print one `parafka: error:` line; a message spread over lines is joined."""
    one_line = re.sub(r"\s*\n\s*", " ", message.strip())
    click.echo(f"parafka: error: {one_line}", err=True)


if __name__ == "__main__":
    sys.exit(main())
