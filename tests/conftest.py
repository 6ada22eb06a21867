"""Shared fixtures: one local broker for the whole test session."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from parafka.broker import BrokerNotAvailable, broker_binary
from parafka.testing import LocalBroker

# Property tests check logic, not speed: no per-example deadline (a loaded 2-core machine
# makes any deadline flaky).
settings.register_profile("parafka", deadline=None)
settings.load_profile("parafka")

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the local broker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/integration, so `-m "not integration"` runs the rest."""
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """A started local broker, shared by every test of the session (use fresh topics)."""
    try:
        broker_binary()
    except BrokerNotAvailable as exc:
        pytest.skip(str(exc))
    with LocalBroker() as local:
        yield local
