"""A running consumer's figures for the tests of what shows them (metrics, views, top):
one baseline, each test changing what it asserts on."""

from __future__ import annotations

from typing import Any

from parafka.core.stats import Stats

BASELINE: dict[str, Any] = {
    "failed": 3,
    "retried": 2,
    "dead_lettered": 1,
    "commits": 9,
    "rebalances": 1,
    "paused_partitions": 1,
}


def busy_stats(**changes: Any) -> Stats:
    """Stats of a consumer that has failed, retried, dead-lettered, committed, rebalanced
    and paused a partition, with `changes` on top."""
    return Stats(**{**BASELINE, **changes})
