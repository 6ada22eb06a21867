"""KafkaBroker's set-up failures name what is missing (no broker is started here)."""

from pathlib import Path

import pytest

from parafka.testing import KafkaBroker
from parafka.testing.kafka_broker import KafkaNotAvailable, cache_root, missing_tools, resolve_kafka


def test_without_maven_an_unresolved_version_names_mvn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no java, no mvn
    monkeypatch.setenv("PARAFKA_CACHE_DIR", str(tmp_path / "cache"))
    assert missing_tools() == ["java", "mvn"]
    assert cache_root() == tmp_path / "cache"
    with pytest.raises(KafkaNotAvailable, match=r"'mvn' is not on the PATH.*apt-get install maven"):
        resolve_kafka("4.4.0")


def test_without_java_the_broker_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaNotAvailable, match=r"needs 'java'"), KafkaBroker():
        pass


def test_cluster_ids_never_start_with_a_dash() -> None:
    """The storage tool would read `-t -x...` as an option (one random id in 64 did)."""
    from parafka.testing.kafka_broker import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
