"""Handler failures as an operator reads them: where in the user's code, repeats grouped.

Pure: no I/O, the time is an argument. The control loop hands every failure to a
`FailureLog`, which says what to log now: the first failure of a kind in full (with the
`file:line` of the user's code), then one summary line per window for its repeats, so a
handler that does not match the data writes a few lines, not one per record and attempt.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sysconfig
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from parafka.core.errors import HandlerMistake

GROUP_WINDOW = 5.0  # seconds: repeats of one failure are summed up this often
_ATTRIBUTE = "_parafka_location"  # set on an exception where its traceback is dropped
_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep
_LIBRARIES = tuple(
    {
        str(Path(p).resolve()) + os.sep
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(name))
    }
)


def location(error: BaseException) -> str | None:
    """`file:line` of the last frame of the user's code in the error's traceback.

    Frames of parafka itself are never the answer; frames of the standard library and of
    installed packages only when no other frame is left (a handler installed with pip).
    None when the error has no traceback (it was raised by parafka, or came from a
    process worker that did not record it, see `remember_location`).
    """
    recorded = getattr(error, _ATTRIBUTE, None)
    if isinstance(recorded, str):
        return recorded
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<") and not _resolved(f.filename).startswith(_PACKAGE)
    ]
    own = [f for f in frames if not _resolved(f.filename).startswith(_LIBRARIES)]
    chosen = (own or frames)[-1:] if frames else []
    if not chosen:
        return None
    return f"{_shown_path(chosen[0].filename)}:{chosen[0].lineno}"


def remember_location(error: BaseException) -> None:
    """Store the error's location on it, for an error that crosses a process boundary
    (pickling drops the traceback but keeps the attributes)."""
    where = location(error)
    if where is not None:
        with contextlib.suppress(AttributeError, TypeError):  # a type with __slots__
            setattr(error, _ATTRIBUTE, where)


def describe(error: BaseException, where: str | None = None) -> str:
    """`Type: message (at file:line)` for log lines and the final error (`where`: the
    location when the caller has it already)."""
    where = where or location(error)
    text = f"{type(error).__name__}: {error}"
    return f"{text} (at {where})" if where else text


def is_mistake(error: BaseException) -> bool:
    """True for errors that fail on every record whatever the data: retrying them or
    dead-lettering every record would only hide the mistake, so the consumer stops."""
    return isinstance(error, HandlerMistake)


@functools.lru_cache(maxsize=1024)
def _resolved(filename: str) -> str:
    """The real path of a frame's file (cached: the same few files fail again and again)."""
    try:
        return str(Path(filename).resolve())
    except OSError:
        return filename


def _shown_path(filename: str) -> str:
    """A path relative to the current directory when it is below it (shorter to read)."""
    try:
        return (
            os.path.relpath(filename)
            if not os.path.relpath(filename).startswith("..")
            else filename
        )
    except ValueError:  # another drive (Windows)
        return filename


@dataclass
class _Group:
    started: float
    failures: int = 0
    records: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class FailureLog:
    """Decides which failure lines to log.

    A failure is known by its exception type and location. The first of a kind is
    logged in full; repeats within `window` seconds are counted, and `due()` sums them
    up in one line per window for as long as they go on. A kind quiet for a whole window
    is forgotten: its next failure is shown in full again.
    """

    window: float = GROUP_WINDOW
    _groups: dict[tuple[str, str | None], _Group] = field(default_factory=dict)

    def failed(
        self, error: BaseException, record: str, attempt: int, outcome: str, now: float
    ) -> str | None:
        """The line to log for this failure now, or None when it is grouped.

        `record` names the record (`topic[partition]@offset`) and `outcome` says what
        happens next ("retrying in 0.50 s", "sent to dead-letter topic x", "skipped").
        """
        key = (type(error).__name__, location(error))
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(started=now)
            return f"{record} failed on attempt {attempt}: {describe(error, key[1])}; {outcome}"
        group.failures += 1
        group.records.add(record)
        group.outcomes[_outcome_kind(outcome)] += 1
        return None

    def due(self, now: float) -> list[str]:
        """Summary lines of the groups whose window has ended."""
        lines = []
        for key, group in list(self._groups.items()):
            if now - group.started < self.window:
                continue
            if group.failures:
                lines.append(_summary(key, group, now - group.started))
                self._groups[key] = _Group(started=now)
            else:
                del self._groups[key]
        return lines

    def flush(self, now: float) -> list[str]:
        """Summary lines of every group with repeats not reported yet (at shutdown)."""
        lines = [_summary(k, g, now - g.started) for k, g in self._groups.items() if g.failures]
        self._groups.clear()
        return lines


def _outcome_kind(outcome: str) -> str:
    """ "retrying in 0.50 s" -> "retrying": the kind of outcome, without its numbers."""
    for kind in ("retrying", "dead-letter", "skipped", "stopping"):
        if kind in outcome:
            return {"dead-letter": "dead-lettered"}.get(kind, kind)
    return outcome


def _summary(key: tuple[str, str | None], group: _Group, seconds: float) -> str:
    name, where = key
    at = f" at {where}" if where else ""
    outcomes = ", ".join(f"{kind} {count}" for kind, count in group.outcomes.most_common())
    return (
        f"{name}{at} again on {len(group.records)} record(s) in the last {seconds:.0f} s "
        f"({group.failures} failure(s): {outcomes}; --log-level debug shows each)"
    )


def report(
    log: logging.Logger,
    failures: FailureLog,
    error: BaseException,
    record: str,
    attempt: int,
    outcome: str,
    now: float,
) -> None:
    """Log one failure the way `failures` decides, and at DEBUG every failure with its
    traceback. The one call the control loop makes per failure."""
    line = failures.failed(error, record, attempt, outcome, now)
    if line is not None:
        log.warning("%s", line)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s failed on attempt %d; %s",
            record,
            attempt,
            outcome,
            exc_info=(type(error), error, error.__traceback__),
        )


def report_due(log: logging.Logger, failures: FailureLog, now: float, final: bool = False) -> None:
    """Log the summaries that are due (all of them when `final`)."""
    for line in failures.flush(now) if final else failures.due(now):
        log.warning("%s", line)
