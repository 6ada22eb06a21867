"""`parafka top`: the live terminal panel of a consumer running elsewhere, from its
dashboard's `/api/stats`.

The JSON is turned back into `Stats` snapshots (`stats_from`, pure) and drawn by the very
`render` that `parafka run` uses for its own panel (terminal.py), so both views show the
same figures the same way. `Remote` is the thin shell: one HTTP GET per refresh, asking
only for the samples it has not seen.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from parafka.cli.views.history import History
from parafka.cli.views.terminal import render
from parafka.cli.views.webdata import COUNTERS
from parafka.core.errors import ConfigError, ParafkaError, wire_name
from parafka.core.stats import PartitionStats, Stats

DEFAULT_URL = "http://127.0.0.1:8080"
KEEP = 10.0  # seconds of samples kept: enough for the rate


@wire_name("parafka.views.top.Unreachable")
class Unreachable(ParafkaError):
    """The dashboard did not answer, or answered something that is not parafka's."""


def check_url(url: str) -> str:
    """The dashboard's base URL, without a trailing slash; ConfigError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--url {url!r} is not an http(s) URL: give the dashboard's address, e.g. "
            f"--url {DEFAULT_URL} (the port of `parafka run --dashboard-port`)"
        )
    return url.rstrip("/")


def partition_from(data: Mapping[str, Any]) -> PartitionStats:
    parts = data.get("parts") or {}
    return PartitionStats(
        topic=data["topic"],
        partition=data["partition"],
        committed=data.get("committed"),
        position=data.get("position"),
        high_watermark=data.get("high_watermark"),
        lag=data.get("lag"),
        pending=data.get("pending", 0),
        done_above=data.get("done_above", 0),
        not_fetched=parts.get("not_fetched"),
        queued=parts.get("queued", 0),
        in_flight=parts.get("in_flight", 0),
        done_not_committed=parts.get("done_not_committed", 0),
        oldest_unfinished=data.get("oldest_unfinished"),
        oldest_age=data.get("oldest_age"),
        behind_retry=data.get("behind_retry", 0),
        metadata_bytes=data.get("metadata_bytes", 0),
        metadata_throttled=data.get("metadata_throttled", False),
    )


def stats_from(
    sample: Mapping[str, Any],
    partitions: tuple[PartitionStats, ...] = (),
    user_paused: tuple[tuple[str, int], ...] = (),
    advice: tuple[str, ...] = (),
) -> Stats:
    """A `Stats` snapshot from one sample of `/api/stats` (and, for the latest, its
    partitions, the partitions an operator paused and the consumer's advice). Fields the
    JSON lacks keep their defaults."""
    values = {name: sample[name] for name in COUNTERS if name in sample}
    return Stats(
        paused=bool(sample.get("paused", False)),
        partitions=partitions,
        user_paused=user_paused,
        advice=advice,
        **values,
    )


class Remote:
    """Polls a dashboard and keeps the samples of the last few seconds."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.history = History(keep=KEEP)
        self.title = "parafka"
        self._seq = -1

    def poll(self) -> int:
        """Fetch the samples not seen yet; returns how many came. Raises Unreachable."""
        data = self._get(f"{self.url}/api/stats?since={self._seq}")
        try:
            samples = data["samples"]
            partitions = tuple(partition_from(p) for p in data["partitions"])
            latest = data["latest_seq"]
            self.title = str(data.get("title") or "parafka")
            control = data.get("control") or {}
            paused = tuple((p["topic"], p["partition"]) for p in control.get("paused", ()))
            advice = tuple(str(line) for line in data.get("advice") or ())  # newer consumers
        except (KeyError, TypeError) as exc:
            raise Unreachable(f"{self.url}/api/stats is not parafka's ({exc!r} missing)") from None
        if latest < self._seq:  # the consumer restarted: its numbering starts over
            self.history = History(keep=KEEP)
        for i, sample in enumerate(samples):
            last = i == len(samples) - 1
            stats = stats_from(sample, partitions, paused, advice) if last else stats_from(sample)
            self.history.add(stats, float(sample["t"]), float(sample["t"]))
        self._seq = latest
        return len(samples)

    def _get(self, url: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise Unreachable(
                f"{url} answered HTTP {exc.code}: is it a parafka dashboard "
                "(`parafka run --dashboard-port`)?"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(
                f"no answer from {self.url} ({reason}): is the consumer running with "
                "--dashboard-port, and is that its address?"
            ) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise Unreachable(f"{url} did not answer JSON: is it a parafka dashboard?") from None
        if not isinstance(data, dict):
            raise Unreachable(f"{url} did not answer a JSON object: is it a parafka dashboard?")
        return data

    def view(self, problem: str | None = None) -> RenderableType:
        panel = render(self.history, title=f"{self.title} · {self.url}")
        if problem is None:
            return panel
        return Group(panel, Text(problem, style="bold red"))


def top(url: str, interval: float, once: bool, console: Console) -> None:
    """Show the consumer behind `url`: once, or redrawn every `interval` seconds until
    Ctrl-C. Raises Unreachable when the first request fails; later failures are shown
    under the panel while it keeps asking."""
    remote = Remote(url, timeout=max(1.0, min(5.0, interval * 2)))
    remote.poll()
    if once:
        console.print(remote.view())
        return
    with Live(remote.view(), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                problem = None
                try:
                    remote.poll()
                except Unreachable as exc:
                    problem = f"{exc} (retrying every {interval:g} s; Ctrl-C to leave)"
                live.update(remote.view(problem), refresh=True)
        except KeyboardInterrupt:
            return
