"""Which of parafka's modules are compiled, and whether this install runs them so.

setup.py compiles the per-record path (`COMPILED`) with mypyc into C extension modules,
which Python imports in place of the .py files beside them. The package works the same
without them (PARAFKA_PURE=1 at install, or no C compiler), only slower; the measurements
are in docs/architecture.md, "The per-record path compiled". Standard library only:
setup.py reads this file before parafka is installed.
"""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The control thread's work per record, fetch to settle, and the thread executor's loop
# (paths inside the package).
COMPILED = (
    "core/entry.py",
    "core/record.py",
    "core/scheduler.py",
    "core/ledger.py",
    "core/offsets.py",
    "core/commits.py",
    "executors/chunks.py",
    "executors/threads.py",
    "engine/control.py",
)


def module_name(path: str) -> str:
    return "parafka." + path.removesuffix(".py").replace("/", ".")


def compiled() -> list[str]:
    """The modules of `COMPILED` that this process imported as extension modules."""
    found = []
    for path in COMPILED:
        name = module_name(path)
        where = getattr(importlib.import_module(name), "__file__", None) or ""
        if where.endswith(tuple(EXTENSION_SUFFIXES)):
            found.append(name)
    return found


def summary() -> str:
    """One line for `parafka --version`: how much of the per-record path runs compiled."""
    done = len(compiled())
    if not done:
        return "pure Python, nothing compiled: PARAFKA_PURE=1, or no C compiler at install"
    return f"per-record path compiled: {done} of {len(COMPILED)} modules"


def stale(package: Path) -> list[str]:
    """Extension modules in the source tree `package` older than their .py (an edit not
    built yet: the extension would still be imported instead)."""
    old = []
    for path in COMPILED:
        source = package / path
        for suffix in EXTENSION_SUFFIXES:
            built = source.with_name(source.stem + suffix)
            if built.exists() and built.stat().st_mtime < source.stat().st_mtime:
                old.append(str(built))
    return old
