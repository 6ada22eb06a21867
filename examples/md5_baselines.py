"""The md5 transformer without parafka: the two ways people run it today, as baselines for
benchmarks/executors.py and the demo (`python -m examples.demo --scene md5`); and parafka
run the same way beside them.

- `start_plain_loops(n)`: n plain loops in one group, each its own process:
  consume(1000) -> md5 -> produce -> flush -> commit.
- `start_queue_pipeline(workers)`: a consumer process -> Queue -> `workers` md5 processes ->
  Queue -> a producer process; every record pays pickling and two pipe hops.
- `start_parafka_processes(n)`: n parafka consumers in one group, each its own process,
  with the batch handler (what `parafka run --processes N --batch-size 1000` starts).

Each returns a `Running`: `processed()` counts records done so far (shared memory, for a
progress bar) and `wait()` returns records/s, timed from the first record done to the last.
Processes are started with `spawn`, like parafka's process executor.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from parafka.kafka.config import producer_config


def md5_value(value: bytes) -> bytes:
    """The transformer's output for a compact JSON object: the input plus "hash"."""
    digest = hashlib.md5(value).hexdigest()
    return value[:-1] + b',"hash":"' + digest.encode() + b'"}'


@dataclass
class Running:
    """Baseline processes at work: records done so far, and their first and last times."""

    procs: list[BaseProcess]
    done: Any  # multiprocessing Value "q"
    times: Any  # multiprocessing Array "d": [first record done, last record done]
    count: int
    watch: list[BaseProcess]  # the run is over when these have ended
    finish: Callable[[], None] = field(default=lambda: None)  # tells helpers to end
    # Queues the children use: they must outlive the children's start (a queue collected
    # in the parent takes its semaphores with it).
    queues: tuple[Any, ...] = ()
    # Members of a group: multiprocessing Arrays "d", when each first had partitions and
    # when it last handled records (wall clock; 0.0 until then). None: not members.
    assigned: Any = None
    worked: Any = None

    def processed(self) -> int:
        return int(self.done.value)

    def alive(self) -> bool:
        return any(proc.is_alive() for proc in self.watch)

    def wait(self, timeout: float = 600.0) -> float:
        """Wait for the run to end; records/s. Raises if it fell short."""
        deadline = time.monotonic() + timeout
        while self.processed() < self.count and self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.finish()
        for proc in self.procs:
            proc.join(max(1.0, min(10.0, deadline - time.monotonic())))
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        if self.processed() < self.count:
            raise RuntimeError(f"the baseline did {self.processed()} of {self.count} records")
        return self.count / (self.times[1] - self.times[0])

    def together(self) -> tuple[float, float] | None:
        """(from, to), wall clock: while every member of a group of two or more had its
        partitions and work left (from the last one's assignment to the first one's last
        records; empty, to <= from, when they never worked together). None for one process.

        On the local broker one member sometimes got its partitions a second after the
        other: the early one then worked alone first, and the late one alone at the end,
        and the whole run's rate was about one process's."""
        if self.assigned is None or len(self.assigned) < 2:
            return None
        return float(max(self.assigned)), float(min(self.worked))


def _group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _consumer(config: dict[str, Any], group: str) -> Consumer:
    return Consumer(
        {**config, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )


def _producer(config: dict[str, Any]) -> Producer:
    return Producer(producer_config(config["bootstrap.servers"], config))


# A member's place in its group's shared arrays: (Running.assigned, Running.worked, index).
Seat = tuple[Any, Any, int]


def _note_assigned(seat: Seat) -> None:
    """The member has partitions now: note when, the first time."""
    assigned, _, member = seat
    if assigned[member] == 0.0:
        assigned[member] = time.time()


def _note_worked(seat: Seat) -> None:
    """The member has just handled records."""
    _, worked, member = seat
    worked[member] = time.time()


def _note_done(done: Any, times: Any, records: int) -> None:
    with done.get_lock():
        if done.value == 0:
            times[0] = time.time()
        done.value += records
        times[1] = time.time()


# -- plain loops ------------------------------------------------------------------------------
def _loop(
    config: dict[str, Any], group: str, topic: str, count: int, done: Any, times: Any,
    seat: Seat, produce_batch: Callable[[list[Any], Producer], None],
) -> None:  # fmt: skip
    """consume(1000) -> `produce_batch` -> flush -> commit, until the whole group (the
    shared counter `done`) has handled `count` records."""
    consumer, producer = _consumer(config, group), _producer(config)

    def on_assign(_consumer: Consumer, partitions: list[Any]) -> None:
        if partitions:  # the client assigns them when this returns
            _note_assigned(seat)

    consumer.subscribe([topic], on_assign=on_assign)
    try:
        while done.value < count:
            batch = [m for m in consumer.consume(1000, 0.2) if m.error() is None]
            produce_batch(batch, producer)
            if batch:
                producer.flush()
                consumer.commit(asynchronous=False)
                _note_done(done, times, len(batch))
                _note_worked(seat)
    finally:
        consumer.close()


def _plain_md5_loop(
    config: dict[str, Any], topic: str, out: str, group: str, count: int, done: Any,
    times: Any, seat: Seat,
) -> None:  # fmt: skip
    """consume(1000) -> md5 -> produce -> flush -> commit."""

    def produce_batch(batch: list[Any], producer: Producer) -> None:
        for message in batch:
            producer.produce(out, md5_value(message.value()), message.key())

    _loop(config, group, topic, count, done, times, seat, produce_batch)


def _handler_md5_loop(
    config: dict[str, Any], topic: str, out: str, group: str, count: int, done: Any,
    times: Any, seat: Seat,
) -> None:  # fmt: skip
    """The plain loop with the per-record API and no engine: each message becomes a record,
    the per-record handler (`md5_transformer.handle`) returns its `Output`, and that is
    produced. What a per-record handler costs before any ordering, offset or output
    bookkeeping: the floor for `parafka run` with that handler."""
    from examples.md5_transformer import handle
    from parafka.core.record import MessageRecord

    def produce_batch(batch: list[Any], producer: Producer) -> None:
        for message in batch:
            record = MessageRecord(message, message.topic(), message.partition(), message.offset())
            output = handle(record)
            producer.produce(output.topic or out, output.value, output.key)

    _loop(config, group, topic, count, done, times, seat, produce_batch)


def start_plain_loops(config: dict[str, Any], topic: str, out: str, count: int, n: int) -> Running:
    """`n` plain md5 loops in one group, each its own process."""
    return _start_members(_plain_md5_loop, n, "md5-plain", count, (config, topic, out))


def _start_members(
    member: Callable[..., None], n: int, prefix: str, count: int, head: tuple[Any, ...],
    tail: tuple[Any, ...] = (),
) -> Running:  # fmt: skip
    """`n` processes of one new group, each running member(*head, group, count, done, times,
    seat, *tail), where `done` counts the records the group has handled and `seat` is the
    member's place in the group's `assigned` and `worked` times."""
    ctx = multiprocessing.get_context("spawn")
    done, times = ctx.Value("q", 0), ctx.Array("d", [0.0, 0.0])
    assigned, worked = ctx.Array("d", [0.0] * n), ctx.Array("d", [0.0] * n)
    group = _group(prefix)
    procs: list[BaseProcess] = [
        ctx.Process(
            target=member, args=(*head, group, count, done, times, (assigned, worked, i), *tail)
        )
        for i in range(n)
    ]
    for proc in procs:
        proc.start()
    return Running(procs, done, times, count, watch=procs, assigned=assigned, worked=worked)


def plain_loops(config: dict[str, Any], topic: str, out: str, count: int, n: int) -> float:
    """`n` plain md5 loops in one group, each its own process; records/s overall."""
    return start_plain_loops(config, topic, out, count, n).wait()


def start_handler_loops(
    config: dict[str, Any], topic: str, out: str, count: int, n: int
) -> Running:
    """`n` plain loops calling the per-record handler, in one group, each its own process."""
    return _start_members(_handler_md5_loop, n, "md5-handler", count, (config, topic, out))


# -- parafka, one consumer per process (what `parafka run --processes N` starts) ----------
BATCH_HANDLER = f"{Path(__file__).resolve().parent / 'md5_transformer.py'}:handle_batch"
# The fastest setup for this handler (benchmarks/RESULTS.md, "Executors"): batches on one
# thread per process (the work is CPU-bound: more threads only contend for the GIL).
BEST_SETTINGS: dict[str, Any] = {
    "ordering": "unordered",
    "batch_size": 1000,
    "concurrency": 1,
    "max_buffered": 12_000,
}


def _parafka_member(
    config: dict[str, Any], topic: str, out: str, group: str, count: int, done: Any,
    times: Any, seat: Seat, target: str, settings: dict[str, Any],
) -> None:  # fmt: skip
    """One parafka consumer of the group, until the whole group (the shared counter `done`)
    has handled `count` records."""
    from parafka import ParallelConsumer, tune_gc

    tune_gc()  # as `parafka run` does
    consumer = ParallelConsumer(
        target,
        bootstrap_servers=str(config["bootstrap.servers"]),
        group_id=group,
        topics=topic,
        kafka_config=config,
        output_topic=out,
        **settings,
    )
    consumer.start()
    seen = 0
    try:
        while done.value < count and consumer.is_running:
            stats = consumer.stats()
            if stats.partitions:
                _note_assigned(seat)
            processed = stats.processed
            if processed > seen:
                _note_done(done, times, processed - seen)
                _note_worked(seat)
                seen = processed
            time.sleep(0.01)
    finally:
        consumer.stop()
        consumer.join(60)


def start_parafka_processes(
    config: dict[str, Any], topic: str, out: str, count: int, n: int,
    target: str = BATCH_HANDLER, settings: dict[str, Any] | None = None,
) -> Running:  # fmt: skip
    """`n` parafka consumers in one group, each its own process: the batch handler with
    BEST_SETTINGS unless told otherwise."""
    return _start_members(
        _parafka_member, n, "md5-parafka", count, (config, topic, out),
        (target, BEST_SETTINGS if settings is None else settings),
    )  # fmt: skip


# -- the multiprocessing-queue pipeline -------------------------------------------------------
def _pipe_consumer(config: dict[str, Any], topic: str, group: str, count: int, q: Any) -> None:
    consumer = _consumer(config, group)
    consumer.subscribe([topic])
    sent = 0
    try:
        while sent < count:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    q.put((message.key(), message.value()))
                    sent += 1
    finally:
        consumer.close()


def _pipe_worker(q_in: Any, q_out: Any) -> None:
    while (item := q_in.get()) is not None:
        key, value = item
        q_out.put((key, md5_value(value)))


def _pipe_producer(
    config: dict[str, Any], out: str, count: int, q: Any, done: Any, times: Any
) -> None:
    producer = _producer(config)
    step = 500  # records between two updates of the shared counter
    for index in range(count):
        key, value = q.get()
        if index == 0:
            times[0] = time.time()
        while True:
            try:
                producer.produce(out, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if (index + 1) % step == 0 and index + 1 < count:
            done.value = index + 1
    producer.flush()
    times[1] = time.time()
    done.value = count


def start_queue_pipeline(
    config: dict[str, Any], topic: str, out: str, count: int, workers: int
) -> Running:
    """consumer process -> Queue -> `workers` md5 processes -> Queue -> producer process."""
    ctx = multiprocessing.get_context("spawn")
    q_in, q_out = ctx.Queue(10_000), ctx.Queue(10_000)
    done, times = ctx.Value("q", 0), ctx.Array("d", [0.0, 0.0])
    group = _group("md5-queues")
    procs: list[BaseProcess] = [
        ctx.Process(target=_pipe_consumer, args=(config, topic, group, count, q_in))
    ]
    procs += [ctx.Process(target=_pipe_worker, args=(q_in, q_out)) for _ in range(workers)]
    procs.append(ctx.Process(target=_pipe_producer, args=(config, out, count, q_out, done, times)))
    for proc in procs:
        proc.start()

    def finish() -> None:
        for _ in range(workers):
            q_in.put(None)

    return Running(procs, done, times, count, watch=procs[-1:], finish=finish, queues=(q_in, q_out))


def queue_pipeline(config: dict[str, Any], topic: str, out: str, count: int, workers: int) -> float:
    """The queue pipeline with `workers` md5 processes; records/s."""
    return start_queue_pipeline(config, topic, out, count, workers).wait()
