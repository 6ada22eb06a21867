"""The `parafka` command line: `parafka run MODULE:FUNCTION ...` and `parafka broker`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

import click
from rich.console import Console

from parafka.errors import BrokerUnreachable, ConfigError, ParafkaError, RecordFailed
from parafka.scheduler import ORDERINGS

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
err_console = Console(stderr=True, highlight=False)


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
@click.option("-b", "--bootstrap-servers", envvar="PARAFKA_BOOTSTRAP_SERVERS", required=True,
              help="Kafka bootstrap servers, host:port[,host:port] (env PARAFKA_BOOTSTRAP_SERVERS).")
@click.option("-g", "--group", "group_id", envvar="PARAFKA_GROUP", required=True,
              help="Consumer group id (env PARAFKA_GROUP).")
@click.option("-t", "--topic", "topics", multiple=True, required=True,
              help="Topic to consume; repeat for several.")
@click.option("--ordering", type=click.Choice(ORDERINGS), default="key", show_default=True,
              help="key: one record at a time per key; partition: per partition; "
              "unordered: no order.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=16, show_default=True,
              help="Records processed at the same time.")
@click.option("-o", "--output-topic", default=None, help="Topic for what the handler returns.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Attempts per record before the consumer stops without committing it.")
@click.option("-X", "kafka_config", multiple=True, callback=_kv, metavar="KEY=VALUE",
              help="Any librdkafka setting, e.g. -X security.protocol=SASL_SSL; repeatable.")
@click.option("--until-idle", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Exit 0 once no record arrived for SECONDS and all work is committed.")
@click.option("--max-buffered", type=click.IntRange(min=1), default=None,
              help="Records held in memory before fetching stops [default: max(1000, 10*C)].")
@click.option("--commit-interval", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Seconds between offset commits.")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds running records get to finish on shutdown.")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=15.0,
              show_default=True, help="Seconds to wait for the cluster before giving up.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
              case_sensitive=False), default="INFO", show_default=True)
def run(
    target: str,
    bootstrap_servers: str,
    group_id: str,
    topics: tuple[str, ...],
    ordering: str,
    concurrency: int,
    output_topic: str | None,
    max_attempts: int,
    kafka_config: dict[str, str],
    until_idle: float | None,
    max_buffered: int | None,
    commit_interval: float,
    shutdown_timeout: float,
    connect_timeout: float,
    log_level: str,
) -> None:
    """Run HANDLER (module:function or path/to/file.py:function) on every record."""
    from parafka.consumer import ParallelConsumer
    from parafka.loader import load_target

    _setup_logging(log_level)
    handler = load_target(target)
    consumer = ParallelConsumer(
        handler,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        topics=topics,
        ordering=ordering,  # type: ignore[arg-type]
        concurrency=concurrency,
        output_topic=output_topic,
        kafka_config=kafka_config,
        max_attempts=max_attempts,
        max_buffered=max_buffered,
        commit_interval=commit_interval,
        shutdown_timeout=shutdown_timeout,
        connect_timeout=connect_timeout,
    )
    started = time.monotonic()
    stats = consumer.run(until_idle=until_idle)
    elapsed = time.monotonic() - started
    err_console.print(
        f"parafka: processed {stats.processed} records in {elapsed:.1f} s "
        f"({stats.failed} failures, {stats.retried} retries, {stats.skipped} skipped as done)"
    )


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True,
              help="Port to listen on (127.0.0.1).")
def broker(port: int) -> None:
    """Run the local development broker (memory only) in the foreground."""
    import signal

    from parafka.broker import BrokerProcess

    process = BrokerProcess(port=port)
    process.start()
    click.echo(f"local broker listening; bootstrap servers: {process.bootstrap_servers}")
    click.echo("press Ctrl+C to stop (data is kept in memory only)")
    signal.signal(signal.SIGTERM, lambda *_: process.stop())
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.stop()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="parafka",
                 standalone_mode=False)
    except click.exceptions.NoArgsIsHelp as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        return EXIT_USAGE
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _error(f"{exc.format_message()}{hint}")
        return EXIT_USAGE
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (BrokerUnreachable, RecordFailed, ParafkaError) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        _error("aborted")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


def _error(message: str) -> None:
    err_console.print(f"parafka: error: {message}", markup=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
