"""Importing the repository's examples/ for the scenes built on them, or saying why not.

examples/ is not part of the installed package: it is found like `python -m` would find it
(the current directory counts), so `parafka demo` works from a checkout's root. Spawned
worker processes inherit the same `sys.path`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from parafka.demo.results import Skip

_CHECKOUT = "needs the repository's examples/: run it from the root of a parafka checkout"
_EXTRA = "needs the examples extra: pip install 'parafka[examples]'"


def example(name: str) -> ModuleType:
    """`examples.<name>`, imported; Skip with the reason and the fix when it cannot be."""
    cwd = str(Path.cwd())
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    full = f"examples.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "examples" or full.startswith(missing + ".") or missing == full:
            raise Skip(_CHECKOUT) from None
        raise Skip(f"{_EXTRA} (no module {missing!r})") from None
