"""End-to-end latency of the anomaly service under an offered load, for benchmarks/anomaly.py
and the demo (`python -m examples.demo --scene anomaly`).

The load generator runs in its own process, so its Python work does not compete for the
GIL with the service under test (a real service does not share its interpreter with its
clients). Each request's Kafka timestamp is its send time; a verdict's latency is its own
timestamp (set when the service produces it) minus its request's, matched by request id.

- `offer_in_child`: one rate, in a fresh child process, until it has sent `total`.
- `OfferedLoad`: several rates one after the other in one child process started ahead of
  time (`ready()` once its requests are generated, `go()` to start), which reports the phase
  it is in, so a watcher can tell which rate a lag it samples belongs to.
- `match`: give every verdict to the phase whose request it answers; `percentiles`.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from examples.anomaly.service import LoadGenerator


@dataclass
class Phase:
    """One offered rate: what was sent, and what came back."""

    rate: int
    sent_at: dict[str, int] = field(default_factory=dict)  # request id -> timestamp (ms)
    offered: float = 0.0  # achieved offered rate
    by_ts: list[float] = field(default_factory=list)  # verdict timestamp - request timestamp
    by_read: list[float] = field(default_factory=list)  # received - request timestamp
    verdicts: int = 0
    duplicates: int = 0
    first_sent: int = 0  # ms
    last_verdict: int = 0  # ms

    @property
    def missing(self) -> int:
        return len(self.sent_at) - self.verdicts

    @property
    def served(self) -> float:
        """Verdicts/s from the first request sent to the last verdict produced."""
        span = (self.last_verdict - self.first_sent) / 1000.0
        return self.verdicts / span if span > 0 else float("nan")


# (request id, verdict timestamp ms, when a reader received it in ms or None)
Seen = tuple[str, int, float | None]


def match(phases: Sequence[Phase], seen: Sequence[Seen]) -> None:
    """Give each verdict to the phase whose request it answers (warm-up ones to none)."""
    owner = {request_id: phase for phase in phases for request_id in phase.sent_at}
    answered: set[str] = set()
    for request_id, verdict_ms, received_ms in seen:
        phase = owner.get(request_id)
        if phase is None:
            continue
        if request_id in answered:
            phase.duplicates += 1
            continue
        answered.add(request_id)
        sent = phase.sent_at[request_id]
        phase.verdicts += 1
        phase.by_ts.append(verdict_ms - sent)
        if received_ms is not None:
            phase.by_read.append(received_ms - sent)
        phase.last_verdict = max(phase.last_verdict, verdict_ms)
    for phase in phases:
        phase.first_sent = min(phase.sent_at.values(), default=0)


def percentiles(values: Sequence[float]) -> list[float]:
    """p50, p95, p99 and max (NaN for none)."""
    if not values:
        return [float("nan")] * 4
    return [*np.percentile(values, [50, 95, 99]).tolist(), max(values)]


# -- one rate in a fresh child ----------------------------------------------------------------
def _offer(bootstrap: str, topic: str, total: int, rate: float | None, seed: int, out: Any) -> None:
    """Child process: offer `total` requests at `rate`/s; send back (id -> send time in ms,
    achieved offered rate)."""
    load = LoadGenerator(bootstrap, topic, total, rate, seed)
    load.run()
    out.put((load.sent_at, load.offered_rate))


def offer_in_child(
    ctx: Any, bootstrap: str, topic: str, total: int, rate: float | None, seed: int
) -> tuple[dict[str, int], float]:
    """Offer `total` requests at `rate`/s from a child process of `ctx` (a multiprocessing
    context); returns (request id -> send time in ms, achieved rate)."""
    results = ctx.Queue()
    proc = ctx.Process(target=_offer, args=(bootstrap, topic, total, rate, seed, results))
    proc.start()
    try:
        sent_at, offered = results.get(timeout=total / (rate or 10_000) + 120)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    return sent_at, offered


# -- several rates, back to back, in one child ------------------------------------------------
def _offer_phases(
    bootstrap: str,
    topic: str,
    plan: Sequence[tuple[int, int]],
    seed: int,
    config: dict[str, Any] | None,
    ready: Any,
    go: Any,
    current: Any,
    out: Any,
) -> None:
    """Child process: prepare a generator per (rate, total), then run them back to back,
    setting `current` to the phase index; sends back (index, sent_at, offered) per phase."""
    loads = [
        LoadGenerator(bootstrap, topic, total, rate, seed + index, config=config)
        for index, (rate, total) in enumerate(plan)
    ]
    ready.set()
    go.wait()
    for index, load in enumerate(loads):
        current.value = index
        load.run()
        out.put((index, load.sent_at, load.offered_rate))
    current.value = len(loads)


class OfferedLoad:
    """Rates offered one after the other by a child process (see the module docstring)."""

    def __init__(
        self,
        ctx: Any,
        bootstrap: str,
        topic: str,
        plan: Sequence[tuple[int, int]],
        seed: int = 101,
        config: dict[str, Any] | None = None,
    ) -> None:
        self._ready, self._go = ctx.Event(), ctx.Event()
        self._current = ctx.Value("i", -1)
        self._out = ctx.Queue()
        self._plan = list(plan)
        self._proc = ctx.Process(
            target=_offer_phases,
            args=(bootstrap, topic, self._plan, seed, config, self._ready, self._go,
                  self._current, self._out),
        )  # fmt: skip

    def start(self) -> None:
        self._proc.start()

    def ready(self, timeout: float) -> bool:
        """True once every phase's requests are generated (the child waits for go())."""
        return bool(self._ready.wait(timeout))

    def go(self) -> None:
        self._go.set()

    @property
    def phase(self) -> int:
        """The phase being offered: -1 before, len(plan) after the last."""
        return int(self._current.value)

    def alive(self) -> bool:
        return self._proc.is_alive()

    def results(self, timeout: float) -> list[tuple[dict[str, int], float]]:
        """(request id -> send time in ms, achieved rate) per phase, once all were sent."""
        found: dict[int, tuple[dict[str, int], float]] = {}
        try:
            while len(found) < len(self._plan):
                index, sent_at, offered = self._out.get(timeout=timeout)
                found[index] = (sent_at, offered)
        except queue.Empty:
            raise TimeoutError(
                f"the load generator sent {len(found)} of {len(self._plan)} phases"
            ) from None
        finally:
            self.stop()
        return [found[index] for index in range(len(self._plan))]

    def stop(self) -> None:
        self._go.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
