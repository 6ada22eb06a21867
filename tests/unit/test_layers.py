"""The floors of src/parafka: imports point down (or sideways), never up a floor.

The order is docs/architecture.md's "Floors" table, lowest first. Imports written under
`if TYPE_CHECKING:` name types only and are not counted. Importing the root package
(`from parafka import ...`) counts as importing engine/, since the root imports the consumer;
`__version__` alone is free. confluent_kafka is imported only in kafka/ and testing/ (the
throwaway brokers hand real clients to tests), and by the few modules named in
CONFLUENT_ELSEWHERE. No module of the library imports the repository's examples/ (the demo
lives there).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "parafka"

FLOORS = ["core", "kafka", "executors", "observe", "dlq", "engine", "testing", "cli"]
# Above every floor: `python -m parafka.sim` (re-exports testing/sim for users) and
# `parafka.__main__`, the console script's entry (it checks the CLI's extra, then runs cli/).
ALIASES = {"sim", "__main__"}
# Below every floor: `parafka.build` names the compiled modules; setup.py reads it before
# parafka is installed, so it imports nothing of parafka (checked below).
BASEMENT = {"build"}
CONFLUENT_FLOORS = {"kafka", "testing"}

# Known exceptions, each with its reason; the list may only shrink.
UPWARD: dict[tuple[str, str], str] = {
    # With tracing on, executors wrap the handler in tracing's Attempts and a worker process
    # sends back Received marks, both imported lazily; tracing needs executors.base's
    # TraceConfig at import. To settle later: TraceConfig moves into tracing, or tracing splits.
    ("parafka.executors.base", "parafka.observe.tracing"): "the handler's tracing wrapper",
    ("parafka.executors.processes", "parafka.observe.tracing"): "a worker's Received marks",
}
CONFLUENT_ELSEWHERE: dict[str, str] = {
    "parafka.dlq.replay": "reads and writes topics with its own clients; to go behind the seam",
    "parafka.cli": "catches KafkaException around a command",
    "parafka.cli.dlq": "catches KafkaException around `dlq replay`",
    "parafka.cli.produce": "produces with its own Producer",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def floor(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def rank(module: str) -> int:
    name = floor(module)
    if name is None:
        return FLOORS.index("engine")
    if name in ALIASES:
        return len(FLOORS)
    if name in BASEMENT:
        return -1
    return FLOORS.index(name)


def type_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    lines.add(getattr(sub, "lineno", -1))
    return lines


def imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    skip = type_only(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_every_module_sits_on_a_floor() -> None:
    strays = [m for m in modules() if floor(m) not in {*FLOORS, *ALIASES, *BASEMENT}]
    assert strays == ["parafka"], f"modules outside the floors {FLOORS}: {strays}"


def test_the_basement_imports_nothing_of_parafka() -> None:
    for name in BASEMENT:
        targets = [target for target, _ in imports(SRC / f"{name}.py")]
        assert not [t for t in targets if t == "parafka" or t.startswith("parafka.")], name


def test_imports_point_down() -> None:
    upward = []
    for module, path in modules().items():
        if floor(module) is None:
            continue
        for target, names in imports(path):
            if target != "parafka" and not target.startswith("parafka."):
                continue
            if target == "parafka" and set(names) <= {"__version__"}:
                continue
            if rank(target) > rank(module) and (module, target) not in UPWARD:
                upward.append(f"{module} imports {target}")
    assert upward == [], "imports pointing up a floor:\n" + "\n".join(sorted(upward))


def test_known_exceptions_still_exist() -> None:
    edges = {(module, target) for module, path in modules().items() for target, _ in imports(path)}
    stale = [edge for edge in UPWARD if edge not in edges]
    assert stale == [], f"remove these from UPWARD, they are gone: {stale}"


def test_confluent_kafka_only_in_kafka_and_testing() -> None:
    outside = []
    for module, path in modules().items():
        if floor(module) in CONFLUENT_FLOORS or module in CONFLUENT_ELSEWHERE:
            continue
        if any(target.split(".")[0] == "confluent_kafka" for target, _ in imports(path)):
            outside.append(module)
    assert outside == [], f"confluent_kafka imported outside kafka/ and testing/: {outside}"


def test_the_library_never_imports_the_examples() -> None:
    found = [
        f"{module} imports {target}"
        for module, path in modules().items()
        for target, _ in imports(path)
        if target.split(".")[0] == "examples"
    ]
    assert found == [], f"the library imports the repository's examples/: {found}"
