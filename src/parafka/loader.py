"""Find the user's handler from a `module:function` or `path/to/file.py:function` target."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parafka.errors import ConfigError


def load_target(target: str) -> Callable[..., Any]:
    """Import and return the callable named by `target`; ConfigError with the fix otherwise."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise ConfigError(
            f"handler {target!r} is not of the form MODULE:FUNCTION or path/to/file.py:FUNCTION"
        )
    module = _load_file(module_part) if module_part.endswith(".py") else _load_module(module_part)
    obj: Any = module
    for name in attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise ConfigError(
                f"{module_part!r} has no attribute {attr!r}: check the function name after ':'"
            ) from None
    if not callable(obj):
        raise ConfigError(
            f"{target!r} is a {type(obj).__name__}, not a function: name a callable that "
            "takes a Record"
        )
    return obj  # type: ignore[no-any-return]


def _load_module(name: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: the current directory counts
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module {name!r}: no such module; check the name, run from "
                "the directory that holds it, or give a file path (path/to/file.py:FUNCTION)"
            ) from None
        raise ConfigError(f"importing module {name!r} failed: {exc}") from None
    except Exception as exc:
        raise ConfigError(
            f"importing module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from None


def _load_file(path_text: str) -> Any:
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"handler file {path_text!r} does not exist: check the path")
    module_name = f"parafka_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path_text!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(
            f"loading {path_text!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    return module
