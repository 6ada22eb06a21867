"""The `--config FILE` (TOML): read it, check every key, give each command its values.

Layout (see README, "Configuration"):

- top-level keys are long option names, with dashes or underscores (`bootstrap-servers`,
  `max_buffered`); a key applies to every command that has that option (mostly `run`);
- `[kafka]` holds librdkafka settings, merged under `-X` (dotted keys may be quoted or not);
- a table named after a command (`[partitions]`, `[dlq.replay]` for a sub-command) holds
  values for that command only, over the top-level ones.

A key that names nothing is an error naming the key and the file: a typo must not be
silently ignored. Option values are handed to click as the strings a command line would
give, so the option's own type checks them with its usual message.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from parafka.core.errors import ConfigError

KAFKA_TABLE = "kafka"


@dataclass(frozen=True)
class OptionSpec:
    """What the file needs to know about one option."""

    param: str  # click's parameter name (`group_id` for --group)
    multiple: bool = False  # repeatable: a list or a single value
    flag: bool = False  # true/false


@dataclass(frozen=True)
class CommandSpec:
    """A command's options by file key, or a group's sub-commands."""

    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    commands: Mapping[str, CommandSpec] = field(default_factory=dict)

    def all_keys(self) -> set[str]:
        """Option keys of this command and every command below it."""
        keys = set(self.options)
        for sub in self.commands.values():
            keys |= sub.all_keys()
        return keys


@dataclass(frozen=True)
class FileValues:
    """What a config file gives one command."""

    path: str
    options: dict[str, Any]  # click parameter name -> value (strings, lists, booleans)
    kafka: dict[str, str]  # librdkafka settings


def file_key(name: str) -> str:
    """The file's spelling of an option: `--max-buffered` -> `max-buffered`."""
    return name.lstrip("-").replace("_", "-")


def read(path: str) -> dict[str, Any]:
    """The parsed TOML document; unreadable or invalid files are configuration errors."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} does not exist: check --config") from None
    except OSError as exc:
        raise ConfigError(f"config file {path!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None


def load(path: str, root: CommandSpec, command: tuple[str, ...]) -> FileValues:
    """Read `path`, check all of it against `root`, and return the values of `command`
    (its path of names below the root, e.g. `("run",)`)."""
    return values_for(path, read(path), root, command)


def values_for(
    path: str, document: Mapping[str, Any], root: CommandSpec, command: tuple[str, ...]
) -> FileValues:
    """The values a parsed document gives `command`; the whole document is checked."""
    check = _Checker(path, root)
    top, tables = check.split(document)
    target, scope = root, tables
    for name in command:
        target = target.commands.get(name, CommandSpec())
        scope = scope.get(name, {})
    options = {
        target.options[key].param: check.value(key, value, target.options[key], "")
        for key, value in top.items()
        if key in target.options
    }
    options.update((target.options[k].param, v) for k, v in scope.items() if k in target.options)
    return FileValues(path=path, options=options, kafka=check.kafka(document.get(KAFKA_TABLE, {})))


class _Checker:
    """Walks a document and raises one ConfigError at the first key that names nothing."""

    def __init__(self, path: str, root: CommandSpec) -> None:
        self.path = path
        self.root = root
        self.top_keys = root.all_keys() - set(root.commands) - {KAFKA_TABLE}

    def split(self, document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(top-level values by file key, unconverted: their shape is checked against the
        command that uses them; command tables, checked and converted)."""
        top: dict[str, Any] = {}
        tables: dict[str, Any] = {}
        for key, value in _unique(self.path, "", document):
            if key == KAFKA_TABLE:
                self._table(key, value)
            elif key in self.root.commands:
                tables[key] = self._command_table(key, value, self.root.commands[key])
            elif key in self.top_keys:
                top[key] = value
            else:
                self._unknown(key, "", sorted(self.top_keys | set(self.root.commands)))
        return top, tables

    def kafka(self, table: Mapping[str, Any]) -> dict[str, str]:
        """`[kafka]` flattened to librdkafka names: nested tables join with dots."""
        return dict(_flatten(self.path, table, ""))

    def _command_table(self, name: str, value: Any, command: CommandSpec) -> dict[str, Any]:
        table = self._table(name, value)
        checked: dict[str, Any] = {}
        for key, item in _unique(self.path, name, table):
            if key in command.commands:
                checked[key] = self._command_table(f"{name}.{key}", item, command.commands[key])
            elif key in command.options:
                checked[key] = self.value(key, item, command.options[key], name)
            else:
                self._unknown(key, name, sorted(set(command.options) | set(command.commands)))
        return checked

    def _table(self, name: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise ConfigError(
                f"config file {self.path!r}: {name!r} must be a table ([{name}]), "
                f"not {_kind(value)}"
            )
        return value

    def value(self, key: str, value: Any, spec: OptionSpec, where: str) -> Any:
        """The value as click takes it from a command line (strings), checked for shape."""
        place = f"{key!r} in [{where}]" if where else repr(key)
        if spec.flag:
            if not isinstance(value, bool):
                raise ConfigError(
                    f"config file {self.path!r}: {place} is {_kind(value)}; use true or false"
                )
            return value
        if isinstance(value, list):
            if not spec.multiple:
                raise ConfigError(f"config file {self.path!r}: {place} takes one value, not a list")
            return [self._scalar(place, item) for item in value]
        scalar = self._scalar(place, value)
        return [scalar] if spec.multiple else scalar

    def _scalar(self, place: str, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(value)
        raise ConfigError(
            f"config file {self.path!r}: {place} is {_kind(value)}; use a string or a number"
        )

    def _unknown(self, key: str, where: str, known: list[str]) -> None:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        place = f" in [{where}]" if where else ""
        raise ConfigError(
            f"config file {self.path!r}: unknown key {key!r}{place}{hint}; keys are long "
            f"option names (e.g. 'bootstrap-servers') and [{KAFKA_TABLE}] holds -X settings"
        )


def _unique(path: str, where: str, table: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Keys in file spelling; `max_buffered` and `max-buffered` together are an error."""
    seen: dict[str, str] = {}
    for raw, value in table.items():
        key = file_key(raw)
        if key in seen:
            place = f" in [{where}]" if where else ""
            raise ConfigError(
                f"config file {path!r}: {key!r} is set twice{place} (as {seen[key]!r} and "
                f"{raw!r}); keep one"
            )
        seen[key] = raw
        yield key, value


def _flatten(path: str, table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(path, value, f"{name}.")
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif isinstance(value, str | int | float):
            yield name, str(value)
        else:
            raise ConfigError(
                f"config file {path!r}: [{KAFKA_TABLE}] {name!r} is {_kind(value)}; "
                "use a string, a number or true/false"
            )


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    return f"a {type(value).__name__}"
