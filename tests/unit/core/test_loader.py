"""load_target: finding the handler named on the command line, and the errors a user meets."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from parafka.core.errors import ConfigError
from parafka.core.loader import load_target


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    """Undo what loading user code adds to sys.path and sys.modules."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


HANDLERS = """
    def handle(record):
        return "handled"

    class Handlers:
        @staticmethod
        def upper(record):
            return "upper"

    not_callable = 42
"""


def test_module_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = unique("handlers")
    write(tmp_path, f"{module}.py", HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_target(f"{module}:handle")(None) == "handled"


def test_module_in_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = unique("pkg")
    write(tmp_path, f"{package}/__init__.py", "")
    write(tmp_path, f"{package}/jobs.py", HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_target(f"{package}.jobs:handle")(None) == "handled"


def test_module_found_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = unique("here")
    write(tmp_path, f"{module}.py", HANDLERS)
    monkeypatch.chdir(tmp_path)
    assert load_target(f"{module}:handle")(None) == "handled"


def test_file_function(tmp_path: Path) -> None:
    path = write(tmp_path, "my_handler.py", HANDLERS)
    assert load_target(f"{path}:handle")(None) == "handled"


def test_file_may_import_its_neighbours(tmp_path: Path) -> None:
    helper = unique("helper")
    write(tmp_path, f"{helper}.py", "ANSWER = 'from the neighbour'\n")
    path = write(
        tmp_path,
        "uses_helper.py",
        f"""
        from {helper} import ANSWER

        def handle(record):
            return ANSWER
        """,
    )
    assert load_target(f"{path}:handle")(None) == "from the neighbour"


def test_nested_attribute(tmp_path: Path) -> None:
    path = write(tmp_path, "nested.py", HANDLERS)
    assert load_target(f"{path}:Handlers.upper")(None) == "upper"


def test_missing_module() -> None:
    name = unique("no_such_module")
    with pytest.raises(ConfigError) as info:
        load_target(f"{name}:handle")
    message = str(info.value)
    assert f"cannot import module {name!r}: no such module" in message
    assert "path/to/file.py:FUNCTION" in message  # the other way to name it


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.py"
    with pytest.raises(ConfigError, match="does not exist: check the path") as info:
        load_target(f"{path}:handle")
    assert str(path) in str(info.value)


def test_module_whose_own_import_fails_names_the_inner_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, missing = unique("needs_dep"), unique("absent_dependency")
    write(tmp_path, f"{module}.py", f"import {missing}\n\ndef handle(record): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_target(f"{module}:handle")
    message = str(info.value)
    assert f"importing module {module!r} failed" in message
    assert f"No module named {missing!r}" in message  # the inner problem, not "no such module"
    assert f"{module}.py:1" in message  # where it happened
    assert "no such module" not in message


def test_module_that_raises_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = unique("raises")
    write(tmp_path, f"{module}.py", "def handle(record): pass\n\nLIMIT = int('ten')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_target(f"{module}:handle")
    message = str(info.value)
    assert "ValueError: invalid literal for int()" in message
    assert f"{module}.py:3" in message


def test_file_with_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "def handle(record) pass\n")
    with pytest.raises(ConfigError, match=r"SyntaxError: .*broken\.py, line 1"):
        load_target(f"{path}:handle")
    assert "parafka_user_broken" not in sys.modules  # a failed load leaves nothing behind


def test_module_that_exits_on_import(tmp_path: Path) -> None:
    path = write(tmp_path, "script.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(ConfigError, match=r"called sys\.exit\(3\) while being imported"):
        load_target(f"{path}:handle")


def test_missing_function(tmp_path: Path) -> None:
    path = write(tmp_path, "handlers.py", HANDLERS)
    with pytest.raises(ConfigError) as info:
        load_target(f"{path}:handel")
    message = str(info.value)
    assert "has no attribute 'handel'" in message
    assert "did you mean 'handle'?" in message
    assert "check the name after ':'" in message


def test_missing_nested_attribute_names_the_missing_part(tmp_path: Path) -> None:
    path = write(tmp_path, "handlers.py", HANDLERS)
    with pytest.raises(ConfigError) as info:
        load_target(f"{path}:Handlers.lower")
    assert f"{path}:Handlers has no attribute 'lower'" in str(info.value)


@pytest.mark.parametrize(
    ("attribute", "kind"), [("not_callable", "int"), ("Handlers.upper.__name__", "str")]
)
def test_not_callable(tmp_path: Path, attribute: str, kind: str) -> None:
    path = write(tmp_path, "handlers.py", HANDLERS)
    with pytest.raises(ConfigError) as info:
        load_target(f"{path}:{attribute}")
    message = str(info.value)
    assert f"{path}:{attribute}" in message
    assert f"is a {kind}, not a function" in message


@pytest.mark.parametrize("target", ["handlers", "handlers:", ":handle", " :handle", "a.py"])
def test_malformed_target(target: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_target(target)
    message = str(info.value)
    assert f"handler {target!r} is not of the form MODULE:FUNCTION" in message
    assert "path/to/file.py:FUNCTION" in message
