"""Issue 17 item 1: move parafka's flat modules into floors, and rewrite every reference.

Run from the repository root on a clean checkout (nothing staged, nothing modified):

    python3 tools/house_move.py            # move, rewrite, stage (git add -A); commit by hand
    python3 tools/house_move.py --dry-run  # print the moves, change nothing

What it does, in order: `git mv` each module (MOVES) and each unit test (TEST_FLOORS) into
its floor; rewrites dotted references (`parafka.X`, `from parafka import X`, string targets
such as "parafka.X:func"), file paths (`src/parafka/X.py`, `tests/unit/test_X.py`) and test
imports (`tests.unit.test_X`) in every tracked text file except CHANGELOG.md (history keeps the
old names); applies FIXUPS (the few edits a rename cannot express); defines the partition type
once; writes the compatibility entry points (`python -m parafka.sim`, `python -m parafka.cli`);
writes the floors into docs/architecture.md; installs the layering and public-name tests from
tools/house/; sorts imports and formats with ruff when it is on PATH or in .venv/bin.
It stops with a message when the tree is not clean or a fixup no longer matches main.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

# The floors, lowest first: a module may import its own floor and the floors below it.
FLOORS: list[tuple[str, str]] = [
    ("core", "pure logic with no I/O and no confluent_kafka: records, the ledger and its entries, "
     "ordering, offsets, the commit-metadata codec, flow, retry timing, rates, dead-letter "
     "headers, statistics and lag arithmetic."),
    ("kafka", "the only floor that wraps confluent-kafka for the engine: the seam's adapter, "
     "client configuration, librdkafka log folding, the group-lag query."),
    ("executors", "where handlers run (threads, asyncio, processes), batched, reporting outcomes."),
    ("observe", "what the running consumer tells operators: health, metrics, the monitor, "
     "advice, tracing, the lag view."),
    ("dlq", "dead-letter tools that act on topics: selecting records again (redrive) and "
     "replaying them."),
    ("engine", "the control loop and what it drives: the public ParallelConsumer, settings, "
     "outputs, the retry topic, pacing, operator steering, the share-group loop, waits."),
    ("testing", "throwaway brokers (local, Apache Kafka), the in-memory cluster and the "
     "deterministic simulator; `parafka.testing` is public."),
    ("cli", "the `parafka` command: one module per command group, shared options, config "
     "loading, the multi-process supervisor, and the terminal and web views."),
]

# Old module (dotted, under parafka) -> new module. A package entry moves the whole folder.
MOVES: dict[str, str] = {
    # core
    "errors": "core.errors",
    "options": "core.options",
    "extras": "core.extras",
    "lifecycle": "core.lifecycle",
    "failures": "core.failures",
    "record": "core.record",
    "seam": "core.seam",
    "codec": "core.codec",
    "offsets": "core.offsets",
    "commits": "core.commits",
    "flow": "core.flow",
    "retry": "core.retry",
    "deserializers": "core.deserializers",
    "loader": "core.loader",
    "entry": "core.entry",
    "scheduler": "core.scheduler",
    "adaptive": "core.adaptive",
    "ratelimit": "core.ratelimit",
    "stall": "core.stall",
    "gctuning": "core.gctuning",
    "deadletter": "core.deadletter",
    "parking": "core.parking",
    "exactly_once": "core.exactly_once",
    "ledger": "core.ledger",
    "timings": "core.timings",
    "executors.outcomes": "core.outcomes",
    "recent": "core.recent",
    "stats": "core.stats",
    "lag": "core.lag",
    "sizing": "core.sizing",
    # kafka
    "confluent": "kafka.confluent",
    "kafka_config": "kafka.config",
    "logs": "kafka.logs",
    "grouplag": "kafka.grouplag",
    # observe
    "health": "observe.health",
    "metrics": "observe.metrics",
    "monitor": "observe.monitor",
    "advice": "observe.advice",
    "tracing": "observe.tracing",
    "lagview": "observe.lagview",
    # dlq
    "redrive": "dlq.redrive",
    "replay": "dlq.replay",
    # engine
    "control": "engine.control",
    "consumer": "engine.consumer",
    "outputs": "engine.outputs",
    "pacing": "engine.pacing",
    "retrytopic": "engine.retrytopic",
    "settings": "engine.settings",
    "share": "engine.share",
    "steering": "engine.steering",
    "waits": "engine.waits",
    # testing (testing.py itself becomes testing/__init__.py)
    "broker": "testing.broker",
    "kafka_broker": "testing.kafka_broker",
    "memory": "testing.memory",
    "sim": "testing.sim",
    # cli (cli.py itself becomes cli/__init__.py)
    "cli_common": "cli.common",
    "cli_config": "cli.config",
    "cli_dlq": "cli.dlq",
    "cli_produce": "cli.produce",
    "cli_sizing": "cli.sizing",
    "cli_top": "cli.top",
    "config_file": "cli.config_file",
    "generate": "cli.generate",
    "supervisor": "cli.supervisor",
    "views": "cli.views",
}
# Modules that stay at the top: the package, and `python -m parafka` / the console script's
# entry, which must not import the cli floor before it knows click is installed.
TOP_LEVEL = {"__init__", "__main__"}
# Modules that become the __init__.py of a floor of the same name (their dotted name stays).
INTO_PACKAGE = ["cli", "testing"]

# Unit tests (tests/unit/<stem>.py) -> the floor of what they test: tests/unit/<floor>/.
TEST_FLOORS: dict[str, str] = {
    "test_adaptive": "core", "test_codec": "core", "test_commits": "core",
    "test_completion_shapes": "core", "test_exactly_once": "core", "test_failures": "core",
    "test_flow": "core", "test_gctuning": "core", "test_lag": "core", "test_ledger": "core",
    "test_loader": "core", "test_offsets": "core", "test_parking": "core",
    "test_ratelimit": "core", "test_record": "core", "test_retry": "core",
    "test_scheduler": "core", "test_sizing": "core", "test_trim": "core",
    "test_on_stuck": "core", "test_operator_actions": "engine",
    "test_bad_settings": "kafka", "test_config": "kafka", "test_logs": "kafka",
    "test_aio_executor": "executors", "test_executors": "executors",
    "test_executor_timings": "executors", "test_isolation": "executors",
    "test_process_watchdog": "executors", "test_thread_chunks": "executors",
    "test_advice": "observe", "test_health": "observe", "test_metrics": "observe",
    "test_tracing": "observe",
    "test_redrive": "dlq",
    "test_adaptive_engine": "engine", "test_control_plane": "engine", "test_rates": "engine",
    "test_share": "engine", "test_share_loop": "engine", "test_stop_signals": "engine",
    "test_waits": "engine", "test_newcomer_settings": "engine",
    "test_kafka_broker": "testing", "test_memory_cluster": "testing",
    "test_memory_consumer": "testing", "test_memory_docs": "testing",
    "test_memory_groups": "testing", "test_sim_checks": "testing", "test_sim_user": "testing",
    "test_reliability_checks": "testing",
    "test_demo": "demo", "test_generate": "cli", "test_wire_names": "core", "test_options": "core", "test_extras": "core", "test_lifecycle": "core",
    "test_cli_config": "cli", "test_cli_consistency": "cli", "test_cli_dlq_usage": "cli",
    "test_cli_monitoring": "cli", "test_cli_sizing": "cli", "test_cli_usage": "cli",
    "test_dashboard_server": "cli", "test_secrets": "cli", "test_supervisor": "cli",
    "test_top": "cli", "test_views": "cli",
}

# Edits a rename cannot express: (file after the move, old text, new text). Each must match.
FIXUPS: list[tuple[str, str, str]] = [
    # failures.py names parafka's own frames by the package folder, now one level up.
    ("src/parafka/core/failures.py",
     "_PACKAGE = str(Path(__file__).resolve().parent) + os.sep",
     "_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep"),
    # timings.py's type-only import pointed at executors/ for a type that now lives in core/.
    ("src/parafka/core/timings.py",
     "from parafka.executors.base import Outcome",
     "from parafka.core.outcomes import Outcome"),
    ("pyproject.toml", '"views/static/*"', '"cli/views/static/*"'),
    # Two lines the longer module names push past 100 characters.
    ("tests/unit/core/test_options.py",
     'BEGIN = "<!-- every setting: generated from parafka.core.options '
     '(python -m tests.unit.core.test_options) -->"',
     'BEGIN = (\n    "<!-- every setting: generated from parafka.core.options "\n'
     '    "(python -m tests.unit.core.test_options) -->"\n)'),
    ("tests/unit/testing/test_reliability_checks.py",
     'f"{_stamp(4)} WARNING parafka.engine.control: lost {T}[1] (session expired); '
     'uncommitted ...",',
     'f"{_stamp(4)} WARNING parafka.engine.control: lost {T}[1] (session expired); "\n'
     '            "uncommitted ...",'),
]

# Text that looks like a module path but is a name on the wire or a logger: never rewritten.
PROTECT = [
    r"-m parafka\.sim(?![\w.])",  # the simulator's command stays where users run it
    r"parafka\.sim\.source",  # a header name
    r"_FILE_META = \"parafka\.config_file\"",  # a click context key, not a module
    r"parafka\.retry\.(?![A-Z])",  # the parafka.retry.* headers of a parked record
    r"parafka\.replay\.count",
    r"getLogger\(\"parafka\.replay\"\)",
    r"logger=\"parafka\.replay\"",
    # parafka's exceptions keep their names on the wire (errors.wire_name): a quoted
    # module.Class name is a header value, and so is the one the operations guide quotes.
    r"[\"']parafka\.[a-z_.]+\.[A-Z]\w*",
    r"`parafka\.errors\.ParkedByOperator`",
]

# Modules that defined their own `TP = tuple[str, int]`: they import the seam's instead.
TP_HOME = "parafka.core.seam"
TP_LINE = re.compile(r"^TP = tuple\[str, int\][^\n]*\n", re.M)

TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".yaml", ".yml", ".json",
                 ".sh", ".rst", ".html", ".js"}
TEXT_NAMES = {"Makefile", "run"}
SKIP = {"CHANGELOG.md", "tools/house_move.py"}
ROOT_SRC = Path("src/parafka")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def module_path(dotted: str) -> Path:
    """The file or folder of a module under src/parafka (dotted relative to parafka)."""
    base = ROOT_SRC.joinpath(*dotted.split("."))
    return base if base.is_dir() else base.with_suffix(".py")


def plan_moves() -> list[tuple[Path, Path]]:
    moves = []
    for name in INTO_PACKAGE:
        moves.append((ROOT_SRC / f"{name}.py", ROOT_SRC / name / "__init__.py"))
    for old, new in MOVES.items():
        src = module_path(old)
        dst = ROOT_SRC.joinpath(*new.split("."))
        moves.append((src, dst if src.is_dir() else dst.with_suffix(".py")))
    for stem, floor in TEST_FLOORS.items():
        moves.append((Path("tests/unit", stem + ".py"), Path("tests/unit", floor, stem + ".py")))
    return moves


def check_plan(moves: list[tuple[Path, Path]]) -> None:
    missing = [str(src) for src, _ in moves if not src.exists()]
    unmapped = sorted(
        p.stem for p in Path("tests/unit").glob("test_*.py") if p.stem not in TEST_FLOORS
    )
    flat = sorted(
        p.stem for p in ROOT_SRC.glob("*.py")
        if p.stem not in MOVES and p.stem not in INTO_PACKAGE and p.stem not in TOP_LEVEL
    )
    if missing or unmapped or flat:
        sys.exit(
            "house_move: main has changed; update the tables at the top of tools/house_move.py:\n"
            f"  missing sources: {missing}\n  unit tests with no floor: {unmapped}\n"
            f"  modules with no floor: {flat}"
        )


def do_moves(moves: list[tuple[Path, Path]]) -> None:
    for folder, sentence in FLOORS:
        init = ROOT_SRC / folder / "__init__.py"
        if folder in INTO_PACKAGE or folder in ("executors", "demo"):
            continue
        init.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.fill(f'"""{sentence[0].upper()}{sentence[1:]}"""', width=96)
        init.write_text(text + "\n")
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(src), str(dst))
    for floor in set(TEST_FLOORS.values()):
        Path("tests/unit", floor, "__init__.py").touch()


def rewriter() -> re.Pattern[str]:
    names = sorted(MOVES, key=len, reverse=True)
    # Not before a hyphen: "parafka.control-token" is a browser storage key.
    return re.compile(r"(?<![\w.])parafka\.(" + "|".join(map(re.escape, names)) + r")(?![\w-])")


DOTTED = rewriter()
PATHS = re.compile(
    r"(?<![\w])parafka/("
    + "|".join(re.escape(k.replace(".", "/")) for k in sorted(MOVES, key=len, reverse=True))
    + r")(?=\.py\b|/)"
)
INTO = re.compile(r"(?<![\w])parafka/(" + "|".join(INTO_PACKAGE) + r")\.py\b")
TEST_DOTTED = re.compile(r"\btests\.unit\.(" + "|".join(TEST_FLOORS) + r")\b")
TEST_PATH = re.compile(r"\btests/unit/(" + "|".join(TEST_FLOORS) + r")\.py\b")
FROM_ROOT = re.compile(r"^(\s*)from parafka import ([\w, ]+)$", re.M)
PROTECTED = re.compile("|".join(f"(?:{p})" for p in PROTECT))


def split_from_root(match: re.Match[str]) -> str:
    """`from parafka import deadletter, Record` -> one line per new home."""
    indent, names = match.group(1), [n.strip() for n in match.group(2).split(",") if n.strip()]
    kept, lines = [], []
    for item in names:
        name = item.split(" as ")[0].strip()
        if name in MOVES:
            package, _, module = ("parafka." + MOVES[name]).rpartition(".")
            rest = item[len(name):]
            lines.append(f"{indent}from {package} import {module}{rest}")
        else:
            kept.append(item)
    if kept:
        lines.insert(0, f"{indent}from parafka import {', '.join(kept)}")
    return "\n".join(lines)


def rewrite(text: str) -> str:
    saved: list[str] = []

    def hide(m: re.Match[str]) -> str:
        saved.append(m.group(0))
        return f"\x00{len(saved) - 1}\x00"

    text = PROTECTED.sub(hide, text)
    text = FROM_ROOT.sub(split_from_root, text)
    text = DOTTED.sub(lambda m: "parafka." + MOVES[m.group(1)], text)
    text = PATHS.sub(lambda m: "parafka/" + MOVES[m.group(1).replace("/", ".")].replace(".", "/"),
                     text)
    text = INTO.sub(lambda m: f"parafka/{m.group(1)}/__init__.py", text)
    text = TEST_DOTTED.sub(lambda m: f"tests.unit.{TEST_FLOORS[m.group(1)]}.{m.group(1)}", text)
    text = TEST_PATH.sub(lambda m: f"tests/unit/{TEST_FLOORS[m.group(1)]}/{m.group(1)}.py", text)
    return re.sub("\x00(\\d+)\x00", lambda m: saved[int(m.group(1))], text)


def absolute_test_imports(text: str) -> str:
    """A moved test's relative imports (`from .test_x`, `from ..otel`) become absolute."""
    text = re.sub(r"^(\s*)from \.\.(\w)", r"\1from tests.\2", text, flags=re.M)
    return re.sub(r"^(\s*)from \.(\w)", r"\1from tests.unit.\2", text, flags=re.M)


def deepen_test_paths(text: str) -> str:
    """A moved test sits one folder deeper: `Path(__file__)...parents[N]` becomes N + 1."""
    return re.sub(
        r"(Path\(__file__\)(?:\.resolve\(\))?\.parents\[)(\d+)\]",
        lambda m: f"{m.group(1)}{int(m.group(2)) + 1}]",
        text,
    )


def rewrite_tree() -> None:
    moved_tests = {f"tests/unit/{f}/{s}.py" for s, f in TEST_FLOORS.items()}
    for name in git("ls-files").splitlines():
        path = Path(name)
        if name in SKIP or name.startswith("tools/house/") or not path.is_file():
            continue
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        try:
            old = path.read_text()
        except UnicodeDecodeError:
            continue
        if name in moved_tests:
            old_text, old = old, absolute_test_imports(old)
        new = rewrite(old)
        if name in moved_tests:
            new = deepen_test_paths(new)
            old = old_text
        if new != old:
            path.write_text(new)


def apply_fixups() -> None:
    for name, old, new in FIXUPS:
        path = Path(name)
        text = path.read_text()
        if old not in text:
            sys.exit(f"house_move: fixup no longer matches {name}: {old!r}; update FIXUPS")
        path.write_text(text.replace(old, new, 1))


def one_partition_type() -> None:
    home = module_path(TP_HOME.removeprefix("parafka."))
    for path in sorted([*ROOT_SRC.rglob("*.py"), *Path("tests").rglob("*.py")]):
        if path == home:
            continue
        text = path.read_text()
        if not TP_LINE.search(text):
            continue
        text = TP_LINE.sub("", text, count=1)
        # Before the first import after `from __future__`; ruff's import sorting places it.
        anchor = re.search(r"^(from (?!__future__)|import )", text, re.M)
        if anchor is None:
            sys.exit(f"house_move: {path} defines TP but has no import to put it next to")
        text = text[: anchor.start()] + f"from {TP_HOME} import TP\n" + text[anchor.start():]
        path.write_text(text)


ENTRY_POINTS = {
    "src/parafka/cli/__main__.py": '''"""`python -m parafka.cli`: the `parafka` command."""

import sys

from parafka.cli import main

if __name__ == "__main__":
    sys.exit(main())
''',
    "src/parafka/sim/__main__.py": '''"""`python -m parafka.sim`: the simulator's command, kept where users run it."""

import sys

from parafka.testing.sim.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
''',
}


def entry_points() -> None:
    for name, text in ENTRY_POINTS.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    sim = ROOT_SRC / "testing" / "sim" / "__init__.py"
    names = re.search(r"__all__ = \[(.*?)\]", sim.read_text(), re.S)
    assert names is not None, "testing/sim/__init__.py lost its __all__"
    listed = [n.strip().strip('"') for n in names.group(1).split(",") if n.strip()]
    body = "".join(f"    {n},\n" for n in listed)
    all_ = "".join(f'    "{n}",\n' for n in listed)
    (ROOT_SRC / "sim" / "__init__.py").write_text(
        '"""`parafka.sim`, kept for users: the simulator lives in `parafka.testing.sim`."""\n\n'
        f"from parafka.testing.sim import (\n{body})\n\n__all__ = [\n{all_}]\n"
    )


BEGIN, END = "<!-- floors: written by tools/house_move.py -->", "<!-- /floors -->"


def floors_doc() -> None:
    doc = Path("docs/architecture.md")
    text = doc.read_text()
    rows = "\n".join(f"| `{folder}/` | {sentence} |" for folder, sentence in FLOORS)
    width = max(len(folder) for folder, _ in FLOORS) + 1
    lines = ["  (each floor imports only the floors below it)", ""]
    for index, (folder, _) in enumerate(reversed(FLOORS)):
        if index:
            lines.append(" " * (width // 2 + 4) + "v")
        lines.append(f"  +-{'-' * width}-+")
        lines.append(f"  | {folder + '/':<{width}} |")
        lines.append(f"  +-{'-' * width}-+")
    drawing = "```text\n" + "\n".join(lines) + "\n```\n\n"
    section = (
        f"{BEGIN}\n## Floors\n\n"
        "The package is a stack of folders, lowest first; a module imports its own folder and "
        "the folders below it, never one above (`tests/unit/test_layers.py` fails otherwise, "
        "and lists the few known exceptions with their reason). Only `kafka/` and `testing/` "
        "import confluent_kafka, besides the few modules the test names, and no module imports "
        "the repository's `examples/` (the demo lives there). The unit tests mirror the tree "
        "(`tests/unit/<folder>/`; `tests/unit/demo/` tests `examples/demo/`).\n\n"
        f"{drawing}| folder | what lives there |\n| --- | --- |\n"
        f"{rows}\n| `sim/` | `python -m parafka.sim` and `parafka.sim`, kept for users: "
        f"the simulator itself is `testing/sim/`. |\n{END}\n\n"
    )
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END) + 2:]
    text = text.replace("## Modules\n", section + "## Modules\n", 1)
    # The module table names files by their path under src/parafka.
    head, _, rest = text.partition("## Modules\n")
    table, sep, tail = rest.partition("\n## ")
    table = re.sub(r"`([a-z_]+)\.py`", lambda m: f"`{module_path_text(m.group(1))}`", table)
    table = re.sub(r"`(memory|sim|views)/", lambda m: f"`{MOVES[m.group(1)].replace('.', '/')}/",
                   table)
    doc.write_text(head + "## Modules\n" + table + sep + tail)


def module_path_text(stem: str) -> str:
    if stem in MOVES:
        return MOVES[stem].replace(".", "/") + ".py"
    if stem in INTO_PACKAGE:
        return f"{stem}/__init__.py"
    return stem + ".py"


def install_tests() -> None:
    for src in sorted(Path("tools/house").glob("test_*.py")):
        shutil.copy(src, Path("tests/unit") / src.name)


def tidy() -> None:
    ruff = shutil.which("ruff") or (".venv/bin/ruff" if Path(".venv/bin/ruff").exists() else None)
    if ruff is None:
        print("house_move: ruff not found; run `ruff check --select I --fix` and `ruff format`")
        return
    targets = ["src", "tests", "benchmarks", "reliability", "examples"]
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--quiet", *targets], check=False)
    subprocess.run([ruff, "format", "--quiet", *targets], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the moves only")
    args = parser.parse_args()
    if not Path("src/parafka/__init__.py").exists():
        sys.exit("house_move: run from the repository root")
    moves = plan_moves()
    check_plan(moves)
    if args.dry_run:
        for src, dst in moves:
            print(f"{src} -> {dst}")
        return 0
    if git("status", "--porcelain", "--untracked-files=no").strip():
        sys.exit("house_move: the work tree has changes; run it on a clean checkout")
    do_moves(moves)
    rewrite_tree()
    apply_fixups()
    one_partition_type()
    entry_points()
    floors_doc()
    install_tests()
    tidy()
    git("add", "-A", "src", "tests", "docs", "pyproject.toml")
    git("add", "-u")
    print("house_move: done; review `git diff --cached --stat` and commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
