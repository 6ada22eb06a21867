"""`parafka produce` and `parafka tail`: put test data in a topic, look at what came out.

`produce` sends lines (stdin or a file) or generated records (`--generate`), with a
progress bar on a terminal; `tail` prints a topic's records kcat-style (partition,
offset, key, value, headers), one a line.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import click
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from parafka.cli.common import bootstrap_option, connect_timeout_option, kafka_config_option
from parafka.cli.config import ParafkaCommand
from parafka.cli.generate import KINDS, Pair, generator
from parafka.core.errors import BrokerUnreachable, ConfigError, ParafkaError, TopicNotFound
from parafka.core.ratelimit import TokenBucket
from parafka.kafka.config import consumer_config, kafka_error_text, producer_config


@click.command(cls=ParafkaCommand)
@click.argument("topic")
@bootstrap_option
@click.option(
    "--generate",
    "spec",
    metavar="|".join(KINDS),
    default=None,
    help="Generated records instead of lines: orders, names (the md5 example's input), "
    "sleep:MIN:MAX (jobs of MIN-MAX ms), weblog (the anomaly example's requests).",
)
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Lines to send, one record each ('-': standard input).",
)
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Records to send  [default: every line; 1000 generated]",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="PER_SECOND",
    help="Send at most this many records a second  [default: as fast as possible]",
)
@click.option(
    "--keys",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Distinct keys of generated records.",
)
@click.option(
    "-K",
    "--key-separator",
    default=None,
    metavar="SEP",
    help="Lines are KEY<SEP>VALUE (e.g. -K :); without it a line is a value with no key.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of generated records.")
@kafka_config_option
@connect_timeout_option
def produce(
    topic: str,
    bootstrap_servers: str,
    spec: str | None,
    path: str,
    count: int | None,
    rate: float | None,
    keys: int,
    key_separator: str | None,
    seed: int,
    kafka_config: dict[str, str],
    connect_timeout: float,
) -> None:
    """Send records to TOPIC: lines of stdin or a file, or generated ones (--generate).

    The topic is created by the broker on first use where it allows that; create it first
    (with the partitions you want) otherwise. Exit 0 once every record is acknowledged.
    """
    if spec is not None and path != "-":
        raise ConfigError("--generate and --file both give the records: use one of them")
    if key_separator == "":
        raise ConfigError("--key-separator '' splits nothing: give a character such as ':'")
    producer = Producer(producer_config(bootstrap_servers, kafka_config))
    _check_reachable(producer, bootstrap_servers, connect_timeout)
    if spec is not None:
        records: Iterable[Pair] = generator(spec)(count or 1000, keys, seed)
        total: int | None = count or 1000
        stream: IO[str] | None = None
    else:
        stream = click.open_file(path, "r", encoding="utf-8")
        records = islice(_lines(stream, key_separator), count)
        total = count
    try:
        sent = _send(producer, topic, records, total, rate)
    finally:
        if stream is not None and stream is not sys.stdin:
            stream.close()
    click.echo(f"parafka: produced {sent} records to {topic}", err=True)


def _lines(stream: IO[str], separator: str | None) -> Iterator[Pair]:
    for line in stream:
        text = line.rstrip("\r\n")
        if separator is not None and separator in text:
            key, _, value = text.partition(separator)
            yield key.encode(), value.encode()
        else:
            yield None, text.encode()


def _check_reachable(client: Producer | Consumer, servers: str, timeout: float) -> None:
    try:
        client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {servers!r} within {timeout:g} s ({kafka_error_text(exc)}): "
            "check --bootstrap-servers and that the broker is running, or raise "
            "--connect-timeout"
        ) from None


def _send(
    producer: Producer, topic: str, records: Iterable[Pair], total: int | None, rate: float | None
) -> int:
    """Send and wait for every acknowledgement; ParafkaError naming the first failure."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    bucket = TokenBucket(rate) if rate is not None else None
    sent = 0
    with _progress(total) as advance:
        for key, value in records:
            if bucket is not None:
                wait = bucket.reserve()
                if wait > 0:
                    producer.poll(wait)
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.05)
                except KafkaException as exc:
                    raise ParafkaError(
                        f"producing to {topic!r} failed: {kafka_error_text(exc)}"
                    ) from None
            sent += 1
            producer.poll(0)
            if failures:
                break
            advance(1)
        unsent = producer.flush(60)
    if failures or unsent:
        first = failures[0].str() if failures else f"{unsent} not acknowledged within 60 s"
        raise ParafkaError(
            f"producing to {topic!r}: {len(failures) + unsent} of {sent} records failed "
            f"(first: {first}); check that the topic exists or that the broker creates it"
        )
    return sent


class _progress:
    """A rich progress bar on a terminal; nothing otherwise (the final line says it)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return lambda _n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        task = self.bar.add_task("producing", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *_exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command(cls=ParafkaCommand)
@click.argument("topic")
@bootstrap_option
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest record  [default: only records that arrive from now on]",
)
@click.option(
    "-n", "--count", type=click.IntRange(min=1), default=None, help="Stop after N records."
)
@click.option(
    "-e",
    "--exit-at-end",
    is_flag=True,
    help="Stop at the end of every partition instead of waiting for more (kcat -e).",
)
@kafka_config_option
@connect_timeout_option
def tail(
    topic: str,
    bootstrap_servers: str,
    from_beginning: bool,
    count: int | None,
    exit_at_end: bool,
    kafka_config: dict[str, str],
    connect_timeout: float,
) -> None:
    """Print TOPIC's records, one a line: PARTITION@OFFSET KEY VALUE [HEADERS].

    No consumer group is joined and nothing is committed. Ctrl+C stops it.
    """
    group = f"parafka-tail-{uuid.uuid4().hex[:8]}"  # required by the client; never joined
    config = consumer_config(
        bootstrap_servers, group, {"enable.partition.eof": True, **kafka_config}
    )
    consumer = Consumer(config)
    try:
        _check_reachable(consumer, bootstrap_servers, connect_timeout)
        metadata = consumer.list_topics(topic, timeout=connect_timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise TopicNotFound(
                f"topic {topic!r} does not exist on {bootstrap_servers}: check the name "
                "(`parafka produce` creates it where the broker allows)"
            )
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        partitions = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        _print_records(consumer, set(partitions), count, exit_at_end)
    finally:
        consumer.close()


def _print_records(
    consumer: Consumer, partitions: set[int], count: int | None, exit_at_end: bool
) -> None:
    at_end: set[int] = set()
    printed = 0
    while count is None or printed < count:
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition() or 0)
                if exit_at_end and at_end >= partitions:
                    return
                continue
            raise ParafkaError(f"reading the topic failed: {error.str()}")
        at_end.discard(message.partition() or 0)
        click.echo(format_record(message))
        printed += 1


def format_record(message: Any) -> str:
    """`partition@offset key value [headers]`: bytes shown as text where they decode."""
    fields = [
        f"{message.partition()}@{message.offset()}",
        _text(message.key()),
        _text(message.value()),
    ]
    headers = message.headers()
    if headers:
        fields.append(" ".join(f"{name}={_text(value)}" for name, value in headers))
    return "\t".join(fields)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return "-"
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
