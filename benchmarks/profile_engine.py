"""Where a record's time goes: parafka's control thread and workers, sampled by py-spy.

Produces `--records` records (100-byte values, 4 partitions, 1,000 keys or `--keys`; or the md5
transformer's name events with `--handler md5`) on a local broker, then runs one
ParallelConsumer in this process until it has processed them all. The run is timed by the
handlers' own count, from the tenth of the records to the last, with py-spy sampling this
process meanwhile (`--gil`: only the thread holding the GIL, so the samples are Python's CPU
time, which is what one process can spend). Each sample is charged to one component by its
innermost parafka frame (or the handler's), and the report gives each component's share and
its cost in microseconds per record (share x GIL-busy time / records).

`--thread-placement os` leaves the control and output threads where the operating system
puts them instead of on one core (engine/placement.py): run it alternated with the default
to see what sharing a core is worth.

`--perf N` samples the control thread with Linux perf instead and lists the N functions
with the largest inclusive share of its time. perf reads C frames without pausing the
thread, so it sees what py-spy cannot: inside the compiled modules and the client, where
the allocator and the freeing of records spend their time.

Usage: python benchmarks/profile_engine.py [--handler noop|md5] [--ordering key|unordered]
                                           [--records N] [--concurrency C] [--rate R]
                                           [--max-buffered N] [--native] [--perf N]
                                           [--thread-placement together|os]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from common import console, fresh_group, keyed_items, produce, table, thread_sched

from parafka import Output, ParallelConsumer, Record, tune_gc
from parafka.build import COMPILED, compiled
from parafka.core.gctuning import GcTimer
from parafka.core.placement import PLACEMENTS
from parafka.testing import LocalBroker

PARTITIONS = 4
KEYS = 1000
WARM_UP = 10  # the first 1/WARM_UP of the records are not timed

# Innermost parafka module (or the handler) -> the component it belongs to. Checked in
# order; the first prefix that matches the frame's file path wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("Completions.wait", "waiting for completions"),
    ("normalize_outputs", "outputs and acknowledgements"),
    ("profile_engine.py", "handler"),
    ("parafka/kafka/confluent.py", "fetch and records"),
    ("parafka/core/record.py", "fetch and records"),
    ("parafka/core/entry.py", "fetch and records"),
    ("parafka/core/scheduler.py", "scheduling"),
    ("parafka/executors/", "dispatch and workers"),
    ("parafka/core/offsets.py", "offsets"),
    ("parafka/core/commits.py", "commit"),
    ("parafka/core/codec.py", "commit"),
    ("parafka/engine/outputs.py", "outputs and acknowledgements"),
    ("parafka/core/ledger.py", "ledger (accept, take, settle)"),
    ("parafka/engine/control.py", "control loop"),
    ("parafka/", "other parafka"),
)


# One item per handler call: the run is timed from the handlers' own count. The consumer's
# stats() are a snapshot refreshed four times a second, and a run of a few hundred
# thousand records lasts about a second: timed by them, its end came up to 0.25 s late
# and the same code seemed to run at two speeds. (list.append is atomic under the GIL.)
_done: list[None] = []


def _md5(record: Record) -> Output:
    _done.append(None)
    value = record.value or b""
    return Output(value[:-1] + b',"hash":"' + hashlib.md5(value).hexdigest().encode() + b'"}')


def _noop(record: Record) -> None:
    _done.append(None)


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process (Python's by name, librdkafka's by
    their kernel names), from /proc."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    # Each read lets go of the GIL, and the busy control thread keeps it for the switch
    # interval (5 ms) before this thread gets it back: some forty reads took a fifth of a
    # second of a one-second run. Hand it back at once while they last.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = thread_sched(names=True)
    finally:
        sys.setswitchinterval(interval)
    used: dict[str, float] = {}
    for tid, (comm, seconds, _) in threads.items():
        name = names.get(tid, comm)
        used[name] = used.get(name, 0.0) + seconds
    return used


# A compiled module's functions (setup.py, mypyc) have no Python frames; with `--native`
# py-spy shows their C functions, named CPyDef_<module>___<function> (or CPyPy_ for the
# wrapper called from Python), whose module is the last part of a compiled module's name.
_COMPILED_FUNCTION = re.compile(r"^CPy(?:Def|Py)_([a-z_]+?)___")
_COMPILED_PATHS = {path.rsplit("/", 1)[-1].removesuffix(".py"): path for path in COMPILED}


def _as_source(frame: str) -> str:
    """A compiled function's frame as the source file it came from; others unchanged."""
    found = _COMPILED_FUNCTION.match(frame)
    if found is None or found.group(1) not in _COMPILED_PATHS:
        return frame
    return f"{frame} (parafka/{_COMPILED_PATHS[found.group(1)]})"


def component(stack: str) -> str:
    """The component of one py-spy raw stack (outermost first, frames split by ';')."""
    for frame in reversed(stack.split(";")):
        frame = _as_source(frame)
        for prefix, name in COMPONENTS:
            if prefix in frame:
                return name
    return "client and interpreter (no parafka frame)"


_MACHINERY = ("_Py", "Py", "method_", "cfunction_", "do_call", "thread", "pythread", "start_",
              "clone", "0x")  # fmt: skip


def _print_perf(data: Path, count: int) -> None:
    """The functions with the largest inclusive share of the control thread's samples
    (perf report --children), the interpreter's own frames left out."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--children", "--sort", "sym", "-g", "none",
         "--stdio", "--percent-limit", "0.5"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    console.print("control thread, inclusive share of its samples (perf, cpu-clock):")
    shown = 0
    for line in report.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith("%") or fields[2] != "[.]":
            continue
        name = fields[3]
        if name.startswith(_MACHINERY):
            continue  # the interpreter's and the thread's calling machinery: in every stack
        console.print(f"{fields[0]:>8}  {name}", highlight=False)
        shown += 1
        if shown == count:
            break


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handler", choices=("noop", "md5"), default="noop")
    parser.add_argument("--ordering", choices=("key", "unordered", "partition"), default="key")
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=KEYS, help="distinct keys (hot keys: few)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-buffered", type=int, help="records held (default: the library's)")
    parser.add_argument(
        "--thread-placement",
        choices=PLACEMENTS,
        default="together",
        help="the control and output threads on one core (the default), or where the OS puts them",
    )
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample C frames too: the compiled modules' functions are charged to their "
        "components (without it their time goes to the nearest Python caller)",
    )
    parser.add_argument("--no-profile", action="store_true", help="only time the run")
    parser.add_argument("--tune-gc", action="store_true", help="parafka.tune_gc() first")
    parser.add_argument(
        "--wall", action="store_true", help="sample every thread, idle included (not --gil)"
    )
    parser.add_argument("--functions", type=int, default=0, help="also list the top N functions")
    parser.add_argument(
        "--perf",
        type=int,
        metavar="N",
        help="instead of py-spy, sample the control thread with Linux perf (4 kHz, DWARF "
        "call graphs: C frames without pausing it) and list the N functions with the "
        "largest inclusive share of its time",
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.perf is not None:
        if shutil.which("perf") is None:
            print(
                "profile_engine: --perf needs Linux perf (apt install linux-perf)", file=sys.stderr
            )
            return 2
        args.no_profile = True  # one sampler at a time
    elif not args.no_profile and not Path(spy).exists():
        print("profile_engine: py-spy not found; install the dev extra", file=sys.stderr)
        return 2

    if args.tune_gc:
        tune_gc()  # as `parafka run` does
    with LocalBroker() as broker:
        config = {"bootstrap.servers": broker.bootstrap_servers, "fetch.queue.backoff.ms": 10}
        topic = f"profile-{os.getpid()}"
        broker.create_topic(topic, PARTITIONS)
        out = None
        if args.handler == "md5":
            out = f"{topic}-out"
            broker.create_topic(out, PARTITIONS)
            values = (b'{"first_name":"Ada%d","last_name":"Lovelace"}' % i for i in range(10**9))
        else:
            values = (b"x" * 100 for _ in range(10**9))
        items = keyed_items(args.records, args.keys, PARTITIONS, values, 7)
        produce(broker.bootstrap_servers, topic, items)
        consumer = ParallelConsumer(
            _md5 if args.handler == "md5" else _noop,
            bootstrap_servers=broker.bootstrap_servers,
            group_id=fresh_group("profile"),
            topics=topic,
            ordering=args.ordering,
            concurrency=args.concurrency,
            max_buffered=args.max_buffered,
            thread_placement=args.thread_placement,
            kafka_config=config,
            output_topic=out,
        )
        raw = Path(tempfile.mkdtemp()) / "samples.txt"
        sampler = None
        consumer.start()
        # The group join and the first tenth of the records (the fetcher filling the
        # client's queue, the handler time measured) are not part of the profile.
        while len(_done) < args.records // WARM_UP and consumer.is_running:
            time.sleep(0.001)
        gc_time = GcTimer()
        gc_time.install()
        threads0 = _thread_cpu()
        first, began, cpu0 = len(_done), time.perf_counter(), time.process_time()
        perf_data = raw.with_name("perf.data")
        if args.perf is not None:
            control = next(t for t in threading.enumerate() if t.name == "parafka-control")
            sampler = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-F", "4000", "--call-graph",
                 "dwarf,16384", "-o", str(perf_data), "-t", str(control.native_id)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        if not args.no_profile:
            sampler = subprocess.Popen(
                [spy, "record", *(("--idle", "--threads") if args.wall else ("--gil",)),
                 *(("--native",) if args.native else ("--nonblocking",)),
                 "-r", str(args.rate), "--format", "raw", "-o", str(raw),
                 "--pid", str(os.getpid())],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        while len(_done) < args.records and consumer.is_running:
            time.sleep(0.001)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu0
        threads = _thread_cpu()
        gc_time.remove()
        counted = len(_done) - first
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(30)
        consumer.stop()
        consumer.join(60)

    rate = counted / seconds
    console.print(
        f"{args.handler} handler, {args.ordering}, C={args.concurrency}: {counted:,} records "
        f"in {seconds:.2f} s = {rate:,.0f} records/s ({1e6 / rate:.2f} us a record); "
        f"process CPU {cpu / seconds:.2f} cores, {cpu / counted * 1e6:.2f} us a record; "
        f"garbage collection {gc_time.total / seconds:.0%} of the time; "
        f"{len(compiled())} of {len(COMPILED)} modules compiled (parafka.build)"
    )
    by_thread = sorted(((threads[t] - threads0.get(t, 0.0), t) for t in threads), reverse=True)
    console.print(
        "CPU by thread: "
        + ", ".join(f"{name} {used / counted * 1e6:.2f} us" for used, name in by_thread[:6] if used)
    )
    if args.perf is not None:
        _print_perf(perf_data, args.perf)
        return 0
    if sampler is None:
        return 0
    if args.native:
        console.print(
            "(--native pauses the process for each sample: the shares hold, the run is slower)"
        )
    totals: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if args.wall and "parafka-control;" not in stack:
            continue  # wall time: the control thread's, where it works and where it waits
        if stack and count.isdigit():
            totals[component(stack)] += int(count)
            functions[stack.split(";")[-1]] += int(count)
    samples = sum(totals.values())
    gil_seconds = samples / args.rate
    rows = [
        [name, f"{n / samples:.1%}", f"{n / args.rate / counted * 1e6:.2f}"]
        for name, n in totals.most_common()
    ]
    console.print(
        table(
            f"GIL held {gil_seconds:.2f} s of {seconds:.2f} s ({gil_seconds / seconds:.0%})",
            ["component", "share", "us a record"],
            rows,
        )
    )
    for frame, n in functions.most_common(args.functions):
        console.print(f"{n / samples:6.1%}  {frame}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
