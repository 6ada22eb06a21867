"""The examples' workloads end to end against the local broker (thread executor)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from examples import md5_transformer, slow_calls
from examples.common import read_topic
from parafka import Record
from parafka.testing import LocalBroker

from .helpers import consumer, group


def by_key(messages: list[Any]) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = defaultdict(list)
    for message in messages:
        found[message.key()].append(message.value())
    return found


# -- md5 transformer -------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [None, 300])
def test_md5_transformer_adds_the_hash_of_every_event(
    broker: LocalBroker, batch_size: int | None
) -> None:
    source, sink = broker.new_topic("names", 4), broker.new_topic("hashed", 4)
    events = md5_transformer.generate(2000, seed=5)
    inputs = {f"n{i}".encode(): md5_transformer.encode(e) for i, e in enumerate(events)}
    broker.produce(source, inputs.items())

    handler = md5_transformer.handle if batch_size is None else md5_transformer.handle_batch
    pc = consumer(
        broker, handler, source, group(), output_topic=sink, concurrency=4, batch_size=batch_size
    )
    assert pc.run(until_idle=1.5).processed == 2000

    outputs = by_key(read_topic(broker.bootstrap_servers, sink, minimum=2000, settle=0.5))
    assert outputs.keys() == inputs.keys()
    for key, values in outputs.items():
        assert len(values) == 1, f"{key!r} has {len(values)} outputs"
        source_value = inputs[key]
        output = json.loads(values[0])
        assert output.pop("hash") == hashlib.md5(source_value).hexdigest()
        assert output == json.loads(source_value)


@pytest.mark.parametrize(
    "value",
    [
        b'{"first_name":"Ada","last_name":"Lovelace"}',  # the spliced fast path
        '{"first_name":"Zoë","last_name":"O\'Neil"}'.encode(),
        b'{ "first_name": "Ada", "age": 36 }\n',  # whitespace, a number last: json path
        b"{}",
    ],
)
def test_md5_handler_splices_like_the_json_reference(value: bytes) -> None:
    record = Record("t", 0, 0, b"k", value)
    spliced = md5_transformer.handle(record)
    reference = md5_transformer.handle_json(record)
    assert md5_transformer.handle_batch([record]) == [spliced]
    assert spliced.key == reference.key == b"k"
    assert isinstance(spliced.value, bytes) and isinstance(reference.value, bytes)
    assert json.loads(spliced.value) == json.loads(reference.value)
    assert json.loads(spliced.value)["hash"] == hashlib.md5(value).hexdigest()


# -- slow calls (IO-bound) -------------------------------------------------------------------
@pytest.mark.parametrize("handler", ["handle", "handle_async"])
def test_slow_calls_answer_every_record_with_the_time_waited(
    broker: LocalBroker, handler: str
) -> None:
    source, sink = broker.new_topic("calls", 2), broker.new_topic("answers", 2)
    broker.produce(source, [(f"k{i % 7}".encode(), b"%d" % (i % 3)) for i in range(300)])

    pc = consumer(broker, getattr(slow_calls, handler), source, group(), output_topic=sink,
                  concurrency=50)  # fmt: skip
    assert pc.run(until_idle=1.5).processed == 300

    answers = [json.loads(m.value()) for m in read_topic(broker.bootstrap_servers, sink, 300)]
    assert sorted(a["waited_ms"] for a in answers) == sorted(float(i % 3) for i in range(300))


# -- anomaly detector ------------------------------------------------------------------------
@pytest.fixture
def anomaly_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small model trained into tmp_path and named by the service's environment variable."""
    pytest.importorskip("sklearn", reason="needs the examples extra: pip install -e '.[examples]'")
    from examples.anomaly import service, train

    path = tmp_path / "model.joblib"
    started = time.monotonic()
    report = train.train(path, events=4000, seed=11)
    assert time.monotonic() - started < 10
    assert path.exists() and report.recall > 0.8
    monkeypatch.setenv(service.MODEL_ENV, str(path))
    return path


def test_anomaly_service_scores_every_request(broker: LocalBroker, anomaly_model: Path) -> None:
    from examples.anomaly import generator, service

    traffic = generator.generate(3000, seed=12)
    source, sink = broker.new_topic("requests", 4), broker.new_topic("scores", 4)
    broker.produce(source, [(e["ip"].encode(), generator.encode(e)) for e in traffic.events])

    pc = consumer(
        broker,
        service.score,
        source,
        group(),
        output_topic=sink,
        batch_size=200,
        batch_wait=0.02,
        ordering="unordered",
        concurrency=4,
    )
    assert pc.run(until_idle=1.5).processed == 3000

    messages = read_topic(broker.bootstrap_servers, sink, minimum=3000, settle=0.5)
    verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ip_of = {e["id"]: e["ip"].encode() for e in traffic.events}
    for message in messages:
        verdict = json.loads(message.value())
        verdicts[verdict["id"]].append(verdict)
        assert message.key() == ip_of[verdict["id"]]  # keyed like its request
    assert verdicts.keys() == ip_of.keys()
    assert all(len(found) == 1 for found in verdicts.values())

    flagged = [verdicts[e["id"]][0]["anomaly"] for e in traffic.events]
    attacks = [bool(label) for label in traffic.labels]
    caught = sum(f and a for f, a in zip(flagged, attacks, strict=True))
    false_alarms = sum(f and not a for f, a in zip(flagged, attacks, strict=True))
    assert sum(attacks) > 200  # about 10% of 3,000
    assert caught / sum(attacks) > 0.8
    assert false_alarms / attacks.count(False) < 0.1
    for found in verdicts.values():
        assert 0.0 <= found[0]["score"] <= 1.0
        assert found[0]["anomaly"] == (found[0]["score"] >= 0.5)


def test_anomaly_service_answers_garbage_with_an_error_verdict(anomaly_model: Path) -> None:
    from examples.anomaly import service

    values = [b'{"id":"ok","path":"/"}', b"not json", b"[1, 2]", None, b' {"id":"spaced"} ']
    outputs = service.score([Record("t", 0, i, b"k", v) for i, v in enumerate(values)])
    verdicts = [o.value for o in outputs]
    assert [v["id"] for v in verdicts] == ["ok", None, None, None, "spaced"]
    assert ["error" in v for v in verdicts] == [False, True, True, True, False]
    assert all(o.key == b"k" for o in outputs)


def test_anomaly_features_of_a_batch_match_one_event_at_a_time() -> None:
    pytest.importorskip("numpy", reason="needs the examples extra: pip install -e '.[examples]'")
    import numpy as np

    from examples.anomaly import features, generator

    events: list[dict[str, Any]] = generator.generate(300, seed=3, attack_share=0.5).events
    events += [{}, {"path": "/\x1f%1f?q=<script>"}, {"path": 5, "user_agent": ["sqlmap"]}]
    batch = features.extract(events)
    one_by_one = np.vstack([features.extract([event]) for event in events])
    assert batch.shape == (len(events), len(features.FEATURES))
    np.testing.assert_array_equal(batch, one_by_one)


def test_anomaly_model_is_trained_when_its_file_is_missing(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="needs the examples extra: pip install -e '.[examples]'")
    from examples.anomaly import service

    path = tmp_path / "nested" / "model.joblib"
    model = service.load_model(path)
    assert path.exists()
    assert service.load_model(path) is model  # loaded once per process and path
