"""`parafka dlq ...`: work with dead-letter topics. `replay` republishes dead letters.

Errors go through `cli.main` like every command's: exit 1 for Kafka failures, 2 for bad
input, one line each.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from parafka.cli.common import (
    bootstrap_option,
    connect_timeout_option,
    kafka_config_option,
    log_level_option,
    setup_logging,
)
from parafka.cli.config import ParafkaGroup
from parafka.dlq.redrive import FILTER_NAMES, Selection

if TYPE_CHECKING:
    from types import FrameType

    from parafka.dlq.replay import Progress, Replayer

log = logging.getLogger(__name__)
PLAIN_PROGRESS_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal


@click.group(cls=ParafkaGroup)  # PARAFKA_* variables and --config, like every command
def dlq() -> None:
    """Work with dead-letter topics."""


@dlq.command()
@click.option(
    "--from",
    "dlq_topic",
    required=True,
    metavar="DLQ_TOPIC",
    help="The dead-letter topic to replay.",
)
@click.option(
    "--to",
    default=None,
    metavar="TOPIC",
    help="Replay everything into TOPIC  [default: each record's source topic, from its "
    "parafka.dlq.topic header, in its original partition].",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="NAME=PATTERN",
    help="Replay only dead letters whose parafka.dlq.NAME header matches the shell glob "
    f"PATTERN, e.g. --filter 'exception=*Timeout'; NAME is one of {', '.join(FILTER_NAMES)}. "
    "Repeat: all must match.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="At most N records per second  [default: as fast as possible].",
)
@bootstrap_option
@click.option(
    "-g",
    "--group",
    default=None,
    help="Consumer group that keeps the replay's progress  [default: derived from --from, "
    "--to and the filters].",
)
@kafka_config_option
@connect_timeout_option
@log_level_option
def replay(
    dlq_topic: str,
    to: str | None,
    filters: tuple[str, ...],
    rate: float | None,
    bootstrap_servers: str,
    group: str | None,
    kafka_config: dict[str, str],
    connect_timeout: float,
    log_level: str,
) -> None:
    """Republish dead letters: original key, value and headers, without the parafka.dlq.*
    headers, with parafka.replay.count raised by one.

    Reads DLQ_TOPIC from the group's committed offsets to the end it has when the replay
    starts, then stops. Progress is committed only past records the broker acknowledged,
    so a second run replays only what is new (at least once: nothing is lost).
    """
    from confluent_kafka import KafkaException

    from parafka.core.errors import ParafkaError
    from parafka.dlq.replay import Replayer, ReplayJob
    from parafka.kafka.config import kafka_error_text, validate_client_config

    job = ReplayJob(
        bootstrap_servers=bootstrap_servers,
        dlq_topic=dlq_topic,
        to=to,
        selection=Selection.parse(filters),
        rate=rate,
        group=group,
        kafka_config=kafka_config,
        connect_timeout=connect_timeout,
    )
    validate_client_config(kafka_config)
    setup_logging(log_level)
    started = time.monotonic()
    with _progress_display() as on_progress:
        replayer = Replayer(job, on_progress)
        with _stop_on_signals(replayer):
            try:
                tally = replayer.run()
            except KafkaException as exc:  # a fatal client error; the others are handled
                raise ParafkaError(f"Kafka client error: {kafka_error_text(exc)}") from None
    for line in tally.lines(dlq_topic, replayer.group, time.monotonic() - started):
        click.echo(line)
    if replayer.stopped:
        raise click.Abort  # exit 130, "interrupted"


@contextmanager
def _progress_display() -> Iterator[Callable[[Progress], None]]:
    """A rich progress bar when stdout is a terminal, else a log line every few seconds."""
    if not sys.stdout.isatty():
        last = [time.monotonic()]

        def log_line(progress: Progress) -> None:
            now = time.monotonic()
            if now - last[0] >= PLAIN_PROGRESS_EVERY:
                last[0] = now
                log.info(
                    "read %d of %s dead letters: %d replayed, %d filtered out",
                    progress.read,
                    progress.total if progress.ends_known else f"{progress.total}+",
                    progress.tally.total_replayed,
                    progress.tally.filtered,
                )

        yield log_line
        return

    from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("replaying", total=None)

        def draw(progress: Progress) -> None:
            tally = progress.tally
            bar.update(
                task,
                completed=progress.read,
                total=max(progress.total, progress.read) if progress.ends_known else None,
                description=f"replayed {tally.total_replayed}, filtered out {tally.filtered}",
            )

        yield draw


@contextmanager
def _stop_on_signals(replayer: Replayer) -> Iterator[None]:
    """SIGINT/SIGTERM stop the replay after committing what was acknowledged; a second
    one stops waiting for acknowledgements. The handler only sets flags: an exception
    raised inside the client's poll() came out as a SystemError (confluent-kafka 2.16)."""
    received = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            log.info("%s received: stopping; committing what the broker acknowledged", name)
        replayer.stop(wait=len(received) == 1)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
