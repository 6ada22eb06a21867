"""Find the user's handler from a `module:function` or `path/to/file.py:function` target."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parafka.core.errors import ConfigError, pinned_class

_FORM = "MODULE:FUNCTION or path/to/file.py:FUNCTION (for example myapp.handlers:handle)"


def load_target(target: str) -> Callable[..., Any]:
    """Import and return the callable named by `target`; ConfigError with the fix otherwise.

    The part after ':' may be dotted (`module:Class.method`). A module is imported like
    `python -m` would (the current directory counts); a file is loaded from its path.
    """
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part.strip() or not attr.strip():
        raise ConfigError(f"handler {target!r} is not of the form {_FORM}")
    obj: Any = _load_file(module_part) if module_part.endswith(".py") else _load_module(module_part)
    path = module_part
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise ConfigError(
                f"handler {target!r} not found: {path} has no attribute {name!r}"
                f"{_suggestion(obj, name)}; check the name after ':'"
            )
        obj = getattr(obj, name)
        path = f"{path}:{name}" if path == module_part else f"{path}.{name}"
    if not callable(obj):
        raise ConfigError(
            f"handler {target!r} is a {type(obj).__name__}, not a function: name a callable "
            "that takes a Record"
        )
    return obj  # type: ignore[no-any-return]


def _suggestion(obj: Any, name: str) -> str:
    close = difflib.get_close_matches(name, [n for n in dir(obj) if not n.startswith("_")], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        raise ConfigError(
            f"importing module {name!r} failed: {_describe(exc)}; install the missing module "
            "or fix the import"
        ) from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"importing module {name!r} failed: {_describe(exc)}") from None


def _load_file(path_text: str) -> Any:
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"handler file {path_text!r} does not exist: check the path")
    module_name = f"parafka_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path_text!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file can import its neighbours
    sys.modules[module_name] = module  # dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise ConfigError(f"loading {path_text!r} failed: {_describe(exc)}") from None
    return module


def _describe(exc: BaseException) -> str:
    """`Type: message (file:line)`, the line being where the import went wrong."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while being imported"
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError):
        return text  # the message already names the file and line
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def load_exception(name: str) -> type[BaseException]:
    """An exception class from a built-in name ("ValueError"), "module:Class", or the name
    a dead letter's header gives one of parafka's own ("parafka.errors.RecordStuck", also as
    "parafka.core.errors:RecordStuck"), which stays valid wherever its module moves."""
    import builtins

    pinned = _parafka_exception(name.replace(":", "."))
    if pinned is not None:
        return pinned
    found: Any = getattr(builtins, name, None) if ":" not in name else None
    if found is None and ":" in name:
        module_part, _, attr = name.rpartition(":")
        module: Any = (
            _load_file(module_part) if module_part.endswith(".py") else (_load_module(module_part))
        )
        found = module
        for part in attr.split("."):
            found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ConfigError(
            f"{name!r} is not an exception class: use a built-in name such as ValueError "
            "or 'module:ExceptionClass'"
        )
    return found


def _parafka_exception(name: str) -> type[BaseException] | None:
    """One of parafka's own exceptions by its pinned name. A class pins its name when its
    module is imported, so on a miss every module of the library is imported once (a
    `--no-retry` flag at start-up, not a hot path)."""
    found = pinned_class(name)
    if found is not None or not name.startswith("parafka."):
        return found
    import pkgutil

    import parafka

    for info in pkgutil.walk_packages(parafka.__path__, "parafka."):
        if ".sim" in info.name or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # a module of a missing extra names none of them
            continue
    return pinned_class(name)
