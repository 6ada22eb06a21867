"""Compiles parafka's per-record path with mypyc.

Why and what it gave: docs/architecture.md, "The per-record path compiled".

The modules listed in src/parafka/build.py are plain, strictly typed Python; mypyc turns
them into C extensions that import in their place. PARAFKA_PURE=1 builds without them: the
package is then the same Python source, only slower. Without a C compiler the build falls
back to it as well (the extensions are optional).
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

# The list lives in the package (parafka/build.py), which reports what an install runs.
COMPILED = [f"src/parafka/{path}" for path in runpy.run_path("src/parafka/build.py")["COMPILED"]]


def extensions() -> list:
    if os.environ.get("PARAFKA_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    # The build runs in pip's isolated environment, without the optional dependencies'
    # types: type-check the compiled modules on their own (`make lint` is the strict check).
    built = mypycify(
        ["--config-file=", "--ignore-missing-imports", *COMPILED],
        opt_level="3",
        group_name="parafka",
    )
    for extension in built:
        extension.optional = True  # no compiler: the pure-Python package still installs
    return built


setup(ext_modules=extensions())
