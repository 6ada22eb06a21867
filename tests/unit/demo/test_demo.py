"""The demo's pure parts: what its scenes check, its workload, and how results decide the
exit status (scenes stood in by small modules; no broker)."""

from __future__ import annotations

import sys
from collections import Counter
from types import ModuleType

import pytest
from rich.console import Console

from examples.demo.catalog import NAMES, SceneInfo
from examples.demo.checks import (
    Call,
    max_concurrent,
    missing_jobs,
    order_violations,
    repeated_jobs,
    shard_of,
    verdict,
)
from examples.demo.jobs import sleep_jobs
from examples.demo.kafka import Stage
from examples.demo.results import Played, Row, Skip
from examples.demo.runner import play_all
from examples.demo.view import LogView, Panel


def call(started: float, ended: float, partition: int, key: bytes, offset: int, job: int) -> Call:
    return Call(started, ended, partition, key, offset, job)


# -- checks --------------------------------------------------------------------------------
def test_calls_of_one_key_in_order_and_apart_are_no_violation() -> None:
    calls = [call(0, 1, 0, b"a", 0, 0), call(1, 2, 0, b"a", 1, 1), call(0, 2, 0, b"b", 2, 2)]
    key = shard_of("key")
    assert key is not None
    assert order_violations(calls, key) == 0


def test_overlapping_or_backward_calls_of_one_shard_are_violations() -> None:
    overlapping = [call(0, 2, 0, b"a", 0, 0), call(1, 3, 0, b"a", 1, 1)]
    backwards = [call(0, 1, 0, b"a", 5, 0), call(1, 2, 0, b"a", 4, 1)]
    key = shard_of("key")
    assert key is not None
    assert order_violations(overlapping, key) == 1
    assert order_violations(backwards, key) == 1


def test_partition_order_spans_keys_and_unordered_promises_none() -> None:
    calls = [call(0, 2, 0, b"a", 0, 0), call(1, 3, 0, b"b", 1, 1)]  # two keys, one partition
    key, partition = shard_of("key"), shard_of("partition")
    assert key is not None and partition is not None
    assert order_violations(calls, key) == 0
    assert order_violations(calls, partition) == 1
    assert shard_of("unordered") is None


def test_missing_and_repeated_jobs() -> None:
    calls = [call(0, 1, 0, b"a", i, job) for i, job in enumerate([0, 1, 1, 3])]
    assert missing_jobs(calls, 4) == 1  # job 2
    assert repeated_jobs(calls) == 1  # job 1 twice


def test_max_concurrent_counts_overlap_and_not_touching_ends() -> None:
    calls = [call(0, 2, 0, b"", 0, 0), call(1, 3, 0, b"", 1, 1), call(2, 4, 0, b"", 2, 2)]
    assert max_concurrent(calls) == 2  # the first ends when the third starts
    assert max_concurrent([]) == 0


def test_verdict_fails_on_a_missing_job_or_broken_order() -> None:
    good = [call(0, 1, 0, b"a", 0, 0), call(1, 2, 0, b"a", 1, 1)]
    assert verdict(good, 2, "key") == ("all 2 ran; order per key: held", True)
    text, ok = verdict(good[:1], 2, "key")
    assert not ok and "1 of 2 MISSING" in text
    text, ok = verdict(
        list(reversed([call(0, 2, 0, b"a", 0, 0), call(1, 3, 0, b"a", 1, 1)])), 2, "key"
    )
    assert not ok and "1 BROKEN" in text


def test_sleep_jobs_spread_keys_evenly_and_keep_a_key_on_one_partition() -> None:
    items = sleep_jobs(count=600, keys=20, partitions=4, low_ms=1, high_ms=3, seed=1)
    assert Counter(key for _, key, _ in items) == {b"customer-%d" % k: 30 for k in range(20)}
    assert Counter(partition for partition, _, _ in items) == dict.fromkeys(range(4), 150)
    assert len({(key, partition) for partition, key, _ in items}) == 20
    jobs = [int(value.split(b":")[0]) for _, _, value in items]
    assert jobs == list(range(600))
    assert all(1 <= float(value.split(b":")[1]) <= 3 for _, _, value in items)


# -- the runner's verdict ------------------------------------------------------------------
def _scene_module(monkeypatch: pytest.MonkeyPatch, name: str, outcome: object) -> SceneInfo:
    """A scene module whose play() returns `outcome` (or raises it, if an exception)."""
    module = ModuleType(name)

    def play(_stage: Stage, panel: Panel) -> Played:
        panel.note("playing")
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Played)
        return outcome

    module.play = play  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return SceneInfo(name, f"scene {name}", "a story", name)


def _play(scenes: list[SceneInfo]) -> tuple[int, str]:
    console = Console(record=True, width=200)
    stage = Stage.create("127.0.0.1:1", {}, quick=True, local=True)  # nothing connects
    code = play_all(stage, scenes, LogView(console), console, where="nowhere")
    return code, console.export_text()


def test_every_check_passed_exits_0_and_a_skipped_scene_does_not_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passed = _scene_module(monkeypatch, "demo_ok", Played([Row("run", "1/s", "-", "ok")], "fine"))
    skipped = _scene_module(monkeypatch, "demo_skip", Skip("needs something"))
    code, text = _play([passed, skipped])
    assert code == 0
    assert "skipped: needs something" in text and "every check passed" in text


def test_a_failed_check_or_a_scene_error_exits_1_and_later_scenes_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = _scene_module(
        monkeypatch, "demo_bad", Played([Row("run", "1/s", "-", "3 MISSING", ok=False)], "bad")
    )
    broken = _scene_module(monkeypatch, "demo_raise", RuntimeError("boom"))
    after = _scene_module(monkeypatch, "demo_after", Played([Row("later", "2/s", "-", "ok")], ""))
    code, text = _play([failed, broken, after])
    assert code == 1
    assert "3 MISSING" in text and "error: RuntimeError: boom" in text and "later" in text
    assert "a check failed in: scene demo_bad, scene demo_raise" in text


def test_the_catalog_names_every_scene_of_the_issue() -> None:
    assert NAMES == ("sleep", "md5", "anomaly", "partitions", "groups")
