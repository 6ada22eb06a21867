"""parafka's own exceptions keep the names their headers went out under (issue 17 moved
their modules; dead letters, parked records and `--no-retry` name them)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import parafka
from parafka.core.deadletter import exception_name
from parafka.core.errors import RecordStuck
from parafka.core.loader import load_exception

# Written out, not computed: a module that moves must not move these.
PINNED = {
    "parafka.errors.ParafkaError", "parafka.errors.ConfigError",
    "parafka.errors.BrokerUnreachable", "parafka.errors.TopicNotFound",
    "parafka.errors.RecordFailed", "parafka.errors.HandlerMistake",
    "parafka.errors.NoOutputTopic", "parafka.errors.NotAssigned", "parafka.errors.Overloaded",
    "parafka.errors.RecordStuck", "parafka.errors.RecordParked",
    "parafka.errors.ActionRefused", "parafka.errors.ParkedByOperator",
    "parafka.replay.ReplayFailed", "parafka.grouplag.NoCommits",
    "parafka.codec.MetadataTooLarge", "parafka.seam.ClientError", "parafka.views.top.Unreachable",
    "parafka.exactly_once.TransactionAborted", "parafka.redrive.NoDestination",
    "parafka.executors.processes.WorkerDied", "parafka.broker.BrokerNotAvailable",
    "parafka.sizing.SizingError", "parafka.deserializers.DeserializationError",
    "parafka.kafka_broker.KafkaNotAvailable", "parafka.extras.MissingExtra",
    "parafka.executors.handover.HandedOver",
}  # fmt: skip
# The simulator's exceptions stay inside its runs; private ones never reach a header.
UNPINNED_MODULES = ("parafka.testing.sim", "parafka.testing.sim")


def _parafka_exceptions() -> dict[type[BaseException], str]:
    found: dict[type[BaseException], str] = {}
    for info in pkgutil.walk_packages(parafka.__path__, "parafka."):
        if info.name.startswith(UNPINNED_MODULES) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[obj] = f"{module.__name__}.{obj.__qualname__}"
    return found


def test_every_exception_of_parafka_has_its_pinned_name() -> None:
    classes = _parafka_exceptions()
    names = {exception_name(cls.__new__(cls)) for cls in classes}
    assert names == PINNED, "a new exception class? pin its name with errors.wire_name"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_pinned_name_loads_its_class(name: str) -> None:
    cls = load_exception(name)
    assert exception_name(cls.__new__(cls)) == name
    module, _, attr = name.rpartition(".")
    assert load_exception(f"{module}:{attr}") is cls


def test_a_subclass_is_named_by_its_own_module() -> None:
    class Mine(RecordStuck):
        pass

    assert exception_name(Mine()) == f"{__name__}.{Mine.__qualname__}"
