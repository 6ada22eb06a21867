"""What the web dashboard's `/api/stats` answers: a history of samples as JSON. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from parafka.cli.views.history import Sample, lag_parts, oldest_age, total_lag_parts
from parafka.core.recent import DeadLetterEvent
from parafka.core.stats import PartitionStats
from parafka.engine.steering import ActionEvent

COUNTERS = (
    "processed",
    "failed",
    "retried",
    "dead_lettered",
    "skipped_after_failure",
    "skipped_already_done",
    "commits",
    "rebalances",
    "in_flight",
    "concurrency_limit",
    "buffer_limit",
    "queued",
    "waiting_retry",
    "paused_partitions",
)


def sample_json(sample: Sample) -> dict[str, Any]:
    """One point of every chart: counters, gauges, records/s and the lag (with its parts)."""
    stats = sample.stats
    point: dict[str, Any] = {"seq": sample.seq, "t": round(sample.wall, 3)}
    point.update({name: getattr(stats, name) for name in COUNTERS})
    point["paused"] = stats.paused  # every partition paused: the buffer stayed full
    point["rate"] = round(sample.rate, 1)
    point["lag"] = stats.lag
    point["lag_parts"] = total_lag_parts(stats)
    return point


def partition_json(p: PartitionStats) -> dict[str, Any]:
    age = oldest_age(p)
    return {
        "topic": p.topic,
        "partition": p.partition,
        "lag": p.lag,
        "parts": lag_parts(p),
        "pending": p.pending,
        "done_above": p.done_above,
        "committed": p.committed,
        "position": p.position,
        "high_watermark": p.high_watermark,
        "oldest_unfinished": getattr(p, "oldest_unfinished", None),
        "oldest_age": None if age is None else round(age, 1),
        "behind_retry": getattr(p, "behind_retry", 0),
        "metadata_bytes": getattr(p, "metadata_bytes", 0),
        "metadata_throttled": getattr(p, "metadata_throttled", False),
    }


def dead_letter_json(event: DeadLetterEvent) -> dict[str, Any]:
    return {
        "t": round(event.at, 3),
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "key": event.key,
        "attempts": event.attempts,
        "error": event.error,
        "headers": dict(event.headers),  # provenance: parafka.dlq.* as text
    }


def action_json(event: ActionEvent) -> dict[str, Any]:
    return {
        "t": round(event.at, 3),
        "action": event.action,
        "target": event.target,
        "result": event.result,
        "message": event.message,
    }


def control_json(
    enabled: bool, paused: Iterable[tuple[str, int]], actions: Sequence[ActionEvent]
) -> dict[str, Any]:
    """The control plane's state for the page: on or off, the partitions an operator
    paused, and the recent actions, newest first."""
    return {
        "enabled": enabled,
        "paused": [{"topic": t, "partition": p} for t, p in paused],
        "actions": [action_json(e) for e in actions][::-1],
    }


def payload(
    samples: Sequence[Sample],
    latest: Sample | None,
    dead_letters: Iterable[DeadLetterEvent] | None,
    *,
    title: str,
    keep: float,
) -> dict[str, Any]:
    """The answer to one poll: new `samples`, the partitions and dead letters as of now.

    `dead_letters` is None when the source does not keep them (the page then shows the
    count only).
    """
    partitions = latest.stats.partitions if latest is not None else ()
    ranked = sorted(partitions, key=lambda p: (-(p.lag or 0), p.topic, p.partition))
    paused = set(latest.stats.user_paused) if latest is not None else set()
    return {
        "title": title,
        "keep": keep,
        "latest_seq": latest.seq if latest is not None else -1,
        "samples": [sample_json(s) for s in samples],
        "partitions": [
            {**partition_json(p), "paused": (p.topic, p.partition) in paused} for p in ranked
        ],
        "dead_letters": (
            None if dead_letters is None else [dead_letter_json(e) for e in dead_letters][::-1]
        ),
        # settings that would help (observe/advice.py), as the log said them once
        "advice": list(latest.stats.advice) if latest is not None else [],
    }
