"""The `parafka` command line: `parafka run MODULE:FUNCTION ...` and `parafka broker`.

Exit codes: 0 clean, 1 runtime failure, 2 usage or configuration error. A mistake the
user can fix is reported as one `parafka: error: ...` line, never a traceback.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import click
from confluent_kafka import KafkaError, KafkaException

from parafka.broker import BrokerNotAvailable
from parafka.errors import ConfigError, ParafkaError
from parafka.logs import QuietRepeats
from parafka.scheduler import ORDERINGS

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_BROKER_LOG_LINES = 10


def _kv(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    config = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{item!r} is not KEY=VALUE: write it like -X fetch.max.bytes=1048576"
            )
        config[key.strip()] = value
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parafka")
def cli() -> None:
    """parafka: process Kafka records in parallel with per-key order and exact offsets."""


@cli.command()
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option(
    "-b",
    "--bootstrap-servers",
    envvar="PARAFKA_BOOTSTRAP_SERVERS",
    required=True,
    help="Kafka bootstrap servers, host:port[,host:port] (env PARAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "-g",
    "--group",
    "group_id",
    envvar="PARAFKA_GROUP",
    required=True,
    help="Consumer group id (env PARAFKA_GROUP).",
)
@click.option(
    "-t",
    "--topic",
    "topics",
    multiple=True,
    required=True,
    help="Topic to consume; repeat for several.",
)
@click.option(
    "--ordering",
    type=click.Choice(ORDERINGS),
    default="key",
    show_default=True,
    help="key: one record at a time per key; partition: per partition; unordered: no order.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Records processed at the same time.",
)
@click.option("-o", "--output-topic", default=None, help="Topic for what the handler returns.")
@click.option(
    "--executor",
    type=click.Choice(["thread", "async", "process"]),
    default=None,
    help="Where handlers run: threads (I/O), async (an async def handler; the default for "
    "one), process (CPU-bound work on every core).  [default: thread]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for --executor process  [default: CPU count]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Call the handler with a list of up to N records (a batch handler).",
)
@click.option(
    "--batch-wait",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Seconds a partial batch waits for more records.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts per record before the consumer stops without committing it.",
)
@click.option(
    "--retry-backoff",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Wait before the first retry of a failed record; doubles each retry, up to 30 s.",
)
@click.option(
    "-X",
    "kafka_config",
    multiple=True,
    callback=_kv,
    metavar="KEY=VALUE",
    help="Any librdkafka setting, e.g. -X security.protocol=SASL_SSL; repeatable.",
)
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Exit 0 once no record arrived for SECONDS and all work is committed.",
)
@click.option(
    "--max-buffered",
    type=click.IntRange(min=1),
    default=None,
    help="Records held in memory before fetching stops [default: max(1000, 10*C)].",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between offset commits.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds running records get to finish on shutdown.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the cluster before giving up.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consumer processes in the group (e.g. one per core), each restarted if it dies.",
)
def run(
    target: str,
    bootstrap_servers: str,
    group_id: str,
    topics: tuple[str, ...],
    ordering: str,
    concurrency: int,
    output_topic: str | None,
    executor: str | None,
    workers: int | None,
    batch_size: int | None,
    batch_wait: float,
    max_attempts: int,
    retry_backoff: float,
    kafka_config: dict[str, str],
    until_idle: float | None,
    max_buffered: int | None,
    commit_interval: float,
    shutdown_timeout: float,
    connect_timeout: float,
    log_level: str,
    processes: int,
) -> None:
    """Run HANDLER (module:function or path/to/file.py:function) on every record."""
    from parafka.consumer import ParallelConsumer
    from parafka.loader import load_target
    from parafka.retry import RetryPolicy

    # Process workers import the handler themselves, from the same target.
    handler = target if executor == "process" else load_target(target)
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        topics=topics,
        ordering=ordering,  # type: ignore[arg-type]  # click.Choice checked it
        concurrency=concurrency,
        output_topic=output_topic,
        executor=executor,
        workers=workers,
        batch_size=batch_size,
        batch_wait=batch_wait,
        kafka_config=kafka_config,
        retry=RetryPolicy(max_attempts=max_attempts, initial_backoff=retry_backoff),
        max_buffered=max_buffered,
        commit_interval=commit_interval,
        shutdown_timeout=shutdown_timeout,
        connect_timeout=connect_timeout,
    )
    if processes > 1:  # arguments are valid: run them as ordinary `parafka run` children
        from parafka.supervisor import run_arguments, supervise

        ctx = click.get_current_context()
        kill_after = shutdown_timeout + 60  # generous: a child is killed only if it hangs
        ctx.exit(supervise(processes, run_arguments(ctx, leave_out="processes"), kill_after))
    _setup_logging(log_level)
    started = time.monotonic()
    try:
        stats = consumer.run(until_idle=until_idle)
    except KafkaException as exc:
        raise ParafkaError(f"Kafka client error: {_kafka_text(exc)}") from None
    elapsed = time.monotonic() - started
    click.echo(
        f"parafka: processed {stats.processed} records in {elapsed:.1f} s "
        f"({stats.failed} failures, {stats.retried} retries, {stats.skipped} skipped as done)",
        err=True,
    )


def _kafka_text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


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
    from parafka.broker import BrokerProcess

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
            f"{code}; last lines of its log:\n{_tail(process.log_path)}"
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


def _tail(path: str | None) -> str:
    if path is None:
        return "(no log)"
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            lines = log.read().splitlines()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(lines[-_BROKER_LOG_LINES:]) or "(empty log)"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=[log_handler(level)],
    )


def log_handler(level: str, stream: TextIO | None = None) -> logging.Handler:
    """The CLI's log handler: repeated warnings and errors are folded (librdkafka's own
    lines are folded where they are logged, `client_logger`); information lines such as
    "assigned ..." and "revoked ..." are state changes and always shown."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if level.upper() != "DEBUG":
        handler.addFilter(QuietRepeats(min_level=logging.WARNING))
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="parafka")), err=True)
        return EXIT_USAGE
    try:
        result = cli.main(args=args, prog_name="parafka", standalone_mode=False)
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
        if isinstance(envvar, str):
            text = f"{text.rstrip('.')} (or set {envvar})."
    return text


def _error(message: str) -> None:
    """Print one `parafka: error:` line; a message spread over lines is joined."""
    one_line = re.sub(r"\s*\n\s*", " ", message.strip())
    click.echo(f"parafka: error: {one_line}", err=True)


if __name__ == "__main__":
    sys.exit(main())
