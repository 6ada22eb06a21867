"""Importing the examples a scene is built on, or saying why not.

The demo sits beside them in examples/, so they import as long as their own needs (the
anomaly model's numpy and scikit-learn) are installed; a scene without them is skipped
with the fix.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from examples.demo.results import Skip

_EXTRA = "needs the examples extra: pip install 'parafka[examples]'"


def example(name: str) -> ModuleType:
    """`examples.<name>`, imported; Skip with the reason and the fix when it cannot be."""
    try:
        return importlib.import_module(f"examples.{name}")
    except ModuleNotFoundError as exc:
        raise Skip(f"{_EXTRA} (no module {exc.name!r})") from None
