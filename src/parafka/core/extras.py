"""The optional dependencies and the extra each comes with, and the one-line error for a
feature used without its extra.

`pip install parafka` is the library, needing only confluent-kafka; the `parafka` command
(click, rich) and Prometheus metrics come with extras (docs/architecture.md says why). Modules
that need an extra import it where the feature starts, through `require`, so the library
imports and runs without them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from parafka.core.errors import ConfigError, wire_name

# Module -> the extra that installs it (pyproject.toml's optional-dependencies).
EXTRAS = {
    "click": "cli",
    "rich": "cli",
    "prometheus_client": "metrics",
    "opentelemetry": "otel",
}


@wire_name("parafka.extras.MissingExtra")
class MissingExtra(ConfigError):
    """A feature was used without the optional dependency it needs; the message names the
    extra to install."""


def install_hint(module: str) -> str:
    """What to run to get `module`: `pip install 'parafka[extra]'`."""
    return f"pip install 'parafka[{EXTRAS[module.partition('.')[0]]}]'"


def require(module: str, feature: str) -> ModuleType:
    """Import `module` for `feature` (as the user names it, e.g. "metrics_port="), or raise
    MissingExtra naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name not in (module, top):
            raise  # the module is there, something it imports is broken: show that
        raise MissingExtra(
            f"{feature} needs {top}, which is not installed: {install_hint(top)}"
        ) from None
