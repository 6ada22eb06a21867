"""The demo's scenes in the order they are shown: name, title, the story in a line, and
the module that plays it (imported only when the scene runs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SceneInfo:
    name: str
    title: str
    story: str
    module: str  # has `play(stage, panel) -> SceneResult`


SCENES: tuple[SceneInfo, ...] = (
    SceneInfo(
        "sleep",
        "IO-bound jobs",
        "Jobs that wait on I/O. The usual fix, a batch with one thread per record, waits for "
        "its slowest record every batch; parafka keeps C jobs running in every mode.",
        "examples.demo.sleep",
    ),
    SceneInfo(
        "md5",
        "md5 transformer (CPU-bound)",
        "consume -> md5 -> produce. A plain batched loop, the multiprocessing-queue pipeline "
        "(pickling and a pipe round trip per record), and parafka's process executor.",
        "examples.demo.md5",
    ),
    SceneInfo(
        "anomaly",
        "anomaly detector under rising load",
        "A model scores web requests in micro-batches while the offered load rises "
        "1,000 -> 5,000 -> 20,000 requests/s; watch the lag and the latency.",
        "examples.demo.anomaly",
    ),
    SceneInfo(
        "partitions",
        "few partitions: what caps each ordering mode",
        "I/O-bound jobs on 2 partitions: `partition` runs one job per partition at a time, "
        "`key` one per key, `unordered` as many as the concurrency allows.",
        "examples.demo.partitions",
    ),
    SceneInfo(
        "groups",
        "two consumer groups, one topic",
        "A fast group and a slow one read the same topic, each at its own offsets: neither "
        "waits for the other, and each gets every record.",
        "examples.demo.groups",
    ),
)

NAMES: tuple[str, ...] = tuple(scene.name for scene in SCENES)
