"""Shared fixtures: one local broker and one Apache Kafka broker per test worker.

Tests take `broker` (the local broker, or either broker when marked `any_broker`) or
`kafka_broker` (Apache Kafka only). Every test that runs on Apache Kafka gets the `kafka`
marker, so `-m kafka` runs the Kafka tier alone and `-m "not kafka"` leaves it out.

The Kafka tier skips with the reason when `java` or `mvn` is missing. With
`PARAFKA_REQUIRE_KAFKA=1` (set by .ci/run where both are installed) a skip is a failure,
and so is a session in which no Kafka test passed.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import parafka
from parafka.build import stale
from parafka.testing import Broker, KafkaBroker, KafkaNotAvailable, LocalBroker
from parafka.testing.broker import BrokerNotAvailable, broker_binary

# Property tests check logic, not speed: no per-example deadline (a loaded 2-core machine
# makes any deadline flaky).
settings.register_profile("parafka", deadline=None)
settings.load_profile("parafka")

_INTEGRATION = Path(__file__).parent / "integration"
_REQUIRE_KAFKA = os.environ.get("PARAFKA_REQUIRE_KAFKA") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test an old build: an extension module (setup.py) imports before the .py
    beside it, so after an edit of a compiled module the tests would run the old code."""
    old = stale(Path(parafka.__file__).parent)
    if old:
        pytest.exit(
            f"compiled module(s) older than their source: {', '.join(old)}; build them again "
            "with `make venv` (make test does it)",
            returncode=2,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the local broker")
    config.addinivalue_line("markers", "kafka: runs against Apache Kafka (needs java and mvn)")
    config.addinivalue_line(
        "markers", "any_broker: run with `broker` as the local broker and as Apache Kafka"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each `any_broker` test once per broker: `[local]` and `[kafka]`."""
    if "broker" in metafunc.fixturenames and metafunc.definition.get_closest_marker("any_broker"):
        metafunc.parametrize(
            "broker",
            [pytest.param("local"), pytest.param("kafka", marks=pytest.mark.kafka)],
            indirect=True,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so `-m "not integration"` runs the rest,
    and every test using Apache Kafka directly with `kafka`."""
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
        if "kafka_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


_passed_kafka: list[str] = []  # node ids; under xdist the controller gets every report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "kafka" in report.keywords:
        _passed_kafka.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With PARAFKA_REQUIRE_KAFKA=1, a run that collected tests but passed no Kafka test fails."""
    if not _REQUIRE_KAFKA or hasattr(session.config, "workerinput"):
        return
    if session.testscollected and not _passed_kafka and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(
            "\nPARAFKA_REQUIRE_KAFKA=1 but no Apache Kafka test passed: the Kafka tier was "
            "skipped or deselected (run it with -m kafka; it needs java and mvn)"
        )


def _unavailable(reason: str) -> None:
    if _REQUIRE_KAFKA:
        pytest.fail(f"PARAFKA_REQUIRE_KAFKA=1 but the Kafka tier cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def local_broker() -> Iterator[LocalBroker]:
    """A started local broker, shared by every test of the worker (use fresh topics)."""
    try:
        broker_binary()
    except BrokerNotAvailable as exc:
        pytest.skip(str(exc))
    with LocalBroker() as local:
        yield local


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A started Apache Kafka broker, shared by every test of the worker (use fresh topics)."""
    kafka = KafkaBroker()
    try:
        kafka.start()
    except KafkaNotAvailable as exc:
        _unavailable(str(exc))
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Broker:
    """The local broker; for a test marked `any_broker`, each broker in turn."""
    kind = getattr(request, "param", "local")
    found: Broker = request.getfixturevalue(f"{kind}_broker")
    return found
