"""The control plane, engine side: an operator's actions on a running consumer.

Other threads (the dashboard's HTTP thread, views/web.py) never touch the ledger or the
consumer. They put a `Command` on a thread-safe queue and wait for its answer; the control
loop drains the queue once a round (`Steering.step`, from ControlLoop.step) and applies
each command on its own thread, as a ledger transition or a pause: the engine's one rule
holds. A command the loop has not taken within the timeout is withdrawn and answered
"timeout", so it never applies late.

- pause / resume a partition: kept in `paused` and applied on top of flow control, whose
  own resumes leave those partitions alone. A revoke drops the partition's pause.
- skip a record the consumer holds: done without its handler (queued, waiting for a
  retry), or now with its outcome ignored (running). Counted as skipped by an operator.
- park a record: written to the dead-letter topic with its provenance headers, then done.
- replay dead letters: no engine state, so not a command; it runs on the caller's thread
  through replay.py, the code of `parafka dlq replay`.

Every action is logged, counted by (action, result) and kept in a ring of the last 50.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from parafka.core.errors import ActionRefused, ParafkaError, ParkedByOperator
from parafka.core.ledger import Actions, Ledger
from parafka.core.seam import TP
from parafka.engine.settings import Settings

log = logging.getLogger(__name__)

PAUSE, RESUME, SKIP, PARK, REPLAY = "pause", "resume", "skip", "park", "replay"
COMMANDS = (PAUSE, RESUME, SKIP, PARK)  # applied by the control loop
ACTIONS = (*COMMANDS, REPLAY)
RESULTS = ("ok", "refused", "failed", "timeout", "denied")  # denied: a security rule
KEEP = 50  # actions kept for the page
TIMEOUT = 5.0  # seconds a caller waits for the loop to take its command


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of an action: `result` is one of RESULTS; `message` says what happened."""

    result: str
    message: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One action as the page lists it (`at`: wall-clock seconds)."""

    at: float
    action: str
    target: str
    result: str
    message: str


def target_name(topic: str, partition: int, offset: int | None = None) -> str:
    return f"{topic}[{partition}]" + ("" if offset is None else f"@{offset}")


class Command:
    """One pause, resume, skip or park, handed from a caller's thread to the loop."""

    __slots__ = ("_answer", "_done", "_lock", "_state", "action", "offset", "partition", "topic")

    def __init__(self, action: str, topic: str, partition: int, offset: int | None) -> None:
        self.action = action
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self._answer: Answer | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._state = "queued"  # -> "taken" (by the loop) or "withdrawn" (by the caller)

    @property
    def target(self) -> str:
        return target_name(self.topic, self.partition, self.offset)

    def take(self) -> bool:
        """The loop takes the command; False when its caller gave up waiting."""
        with self._lock:
            if self._state == "withdrawn":
                return False
            self._state = "taken"
            return True

    @property
    def answer(self) -> Answer | None:
        """The loop's answer, once it applied (or refused) the command."""
        return self._answer

    def settle(self, answer: Answer) -> None:
        self._answer = answer
        self._done.set()

    def wait(self, timeout: float) -> Answer | None:
        """The answer, or None when the loop did not take the command in time (withdrawn)."""
        if self._done.wait(timeout):
            return self._answer
        with self._lock:
            if self._state == "queued":
                self._state = "withdrawn"
                return None
        # Taken just now: applying it is a few ledger steps, so its answer is near.
        self._done.wait(timeout)
        return self._answer


class Helm(Protocol):
    """What the steering needs of the control loop (ControlLoop has it)."""

    @property
    def ledger(self) -> Ledger: ...

    @property
    def settings(self) -> Settings: ...

    def hold(self, tp: TP) -> None:
        """Pause fetching `tp`."""

    def release(self, tp: TP) -> bool:
        """Resume fetching `tp` unless flow control holds it; True when resumed."""
        ...

    def apply(self, actions: Actions) -> None:
        """Do the I/O a ledger transition asked for (dead letters)."""


class Steering:
    """The command queue, the partitions an operator paused, and the action log."""

    def __init__(self, keep: int = KEEP) -> None:
        self.paused: set[TP] = set()  # control thread only
        self.wake: Callable[[], None] | None = None  # wakes the loop when a command comes
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._events: deque[ActionEvent] = deque(maxlen=keep)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._closed = False

    # -- any thread -----------------------------------------------------------------------
    def request(
        self,
        action: str,
        topic: str,
        partition: int,
        offset: int | None = None,
        timeout: float = TIMEOUT,
    ) -> Answer:
        """Ask the loop to apply `action` and wait for its answer (at most about `timeout`)."""
        command = self.post(action, topic, partition, offset)
        if command.answer is not None:
            return command.answer
        taken = command.wait(timeout)
        if taken is not None:
            return taken
        answer = Answer(
            "timeout",
            f"the control loop did not take the {action} of {command.target} within "
            f"{timeout:g} s (it may be stopping, or blocked); nothing was changed",
        )
        self.record(action, command.target, answer)
        return answer

    def post(self, action: str, topic: str, partition: int, offset: int | None = None) -> Command:
        """Queue `action` for the loop without waiting (the simulator steps the loop
        itself); its `answer` is set once applied, at once when the loop has stopped."""
        if action not in COMMANDS:
            raise ValueError(f"unknown action {action!r}: use one of {', '.join(COMMANDS)}")
        if action in (SKIP, PARK) and offset is None:
            raise ValueError(f"{action} names a record: give its offset")
        command = Command(action, topic, partition, offset if action in (SKIP, PARK) else None)
        if self._closed:
            answer = Answer("refused", "the consumer is not running: nothing to act on")
            self.record(action, command.target, answer)
            command.settle(answer)
            return command
        self._queue.put(command)
        if self.wake is not None:
            self.wake()
        return command

    def record(self, action: str, target: str, answer: Answer) -> None:
        """Log, count and keep one action's outcome."""
        event = ActionEvent(time.time(), action, target, answer.result, answer.message)
        with self._lock:
            self._events.append(event)
            self._counts[(action, answer.result)] += 1
        level = logging.INFO if answer.ok else logging.WARNING
        log.log(level, "control: %s %s: %s (%s)", action, target, answer.result, answer.message)

    def events(self) -> tuple[ActionEvent, ...]:
        """The last actions, oldest first."""
        with self._lock:
            return tuple(self._events)

    def counts(self) -> tuple[tuple[str, str, int], ...]:
        """(action, result, count) since start, sorted."""
        with self._lock:
            return tuple(sorted((a, r, n) for (a, r), n in self._counts.items()))

    # -- the control thread ---------------------------------------------------------------
    def step(self, helm: Helm) -> None:
        """Apply the commands waiting (cheap when none is)."""
        if self._queue.empty():
            return
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            if not command.take():
                continue
            try:
                answer = self._apply(helm, command)
            except ActionRefused as exc:
                answer = Answer("refused", str(exc))
            except (ParafkaError, ValueError, RuntimeError) as exc:
                log.warning("control: %s %s failed", command.action, command.target, exc_info=True)
                answer = Answer("failed", f"{type(exc).__name__}: {exc}")
            self.record(command.action, command.target, answer)
            command.settle(answer)

    def forget(self, tps: Iterable[TP]) -> None:
        """Revoked or lost partitions: their operator pauses end with the assignment."""
        for tp in set(tps) & self.paused:
            self.paused.discard(tp)
            log.info("control: pause of %s dropped: the partition was revoked", target_name(*tp))

    def close(self) -> None:
        """The loop stops: refuse what waits, and what comes later."""
        self._closed = True
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            if command.take():
                answer = Answer("refused", "the consumer is stopping: nothing was changed")
                self.record(command.action, command.target, answer)
                command.settle(answer)

    def _apply(self, helm: Helm, command: Command) -> Answer:
        tp = (command.topic, command.partition)
        name = target_name(*tp)
        ledger = helm.ledger
        if command.action == PAUSE:
            if tp not in ledger.parts:
                raise ActionRefused(f"cannot pause {name}: {_not_assigned(ledger)}")
            if tp in self.paused:
                return Answer("ok", f"{name} was paused already")
            self.paused.add(tp)
            helm.hold(tp)
            return Answer(
                "ok", f"{name} paused: nothing more is fetched from it until resumed or revoked"
            )
        if command.action == RESUME:
            if tp not in self.paused:
                where = "" if tp in ledger.parts else f" ({_not_assigned(ledger)})"
                raise ActionRefused(f"cannot resume {name}: no operator paused it{where}")
            self.paused.discard(tp)
            if helm.release(tp):
                return Answer("ok", f"{name} resumed")
            return Answer("ok", f"{name} resumed; flow control still holds it (buffer full)")
        assert command.offset is not None
        record = target_name(*tp, command.offset)
        entry = ledger.find(tp, command.offset)
        if entry is None:
            raise ActionRefused(
                f"cannot {command.action} {record}: this consumer does not hold it (not "
                "assigned here, not fetched yet, or already done)"
                + ("" if tp in ledger.parts else f"; {_not_assigned(ledger)}")
            )
        was = entry.state.value
        if command.action == SKIP:
            helm.apply(ledger.skip(entry))
            if was == "running":
                return Answer(
                    "ok",
                    f"{record} skipped: counted done; its running handler's "
                    "outcome will be ignored",
                )
            return Answer("ok", f"{record} skipped ({was}): counted done without its handler")
        topic = helm.settings.dead_letter_topic
        if ledger.parks_on_retry_topic(entry):
            topic = helm.settings.retry_topic
        if topic is None:
            raise ActionRefused(
                f"cannot park {record}: no dead-letter topic is set (--dead-letter-topic)"
            )
        reason = ParkedByOperator(f"parked by an operator from the control plane (was {was})")
        helm.apply(ledger.park(entry, reason))
        return Answer("ok", f"{record} parked ({was}): sent to {topic}; done once acknowledged")


def _not_assigned(ledger: Ledger, shown: int = 10) -> str:
    tps = sorted(ledger.parts)
    assigned = ", ".join(target_name(*tp) for tp in tps[:shown]) or "none"
    more = f" and {len(tps) - shown} more" if len(tps) > shown else ""
    return f"not assigned to this consumer (assigned: {assigned}{more})"


def replay(settings: Settings, records: Iterable[tuple[str, int, int]]) -> Answer:
    """Republish the dead letters of `records` (source topic, partition, offset) written by
    this consumer's group, each to its source topic, through replay.py (`parafka dlq
    replay` with exact filters). Each record's replay keeps its own progress group, so
    asking twice replays it once. Runs on the caller's thread: no engine state is touched."""
    from parafka.dlq.redrive import HeaderFilter, Selection
    from parafka.dlq.replay import Replayer, ReplayJob

    wanted = sorted(set(records))
    if not wanted:
        raise ActionRefused("replay: name at least one dead letter (topic, partition, offset)")
    dlq = settings.dead_letter_topic
    if dlq is None:
        raise ActionRefused("replay: this consumer has no dead-letter topic (--dead-letter-topic)")
    replayed: list[str] = []
    missing: list[str] = []
    for topic, partition, offset in wanted:
        selection = Selection(
            [
                HeaderFilter("topic", _exact(topic)),
                HeaderFilter("partition", str(partition)),
                HeaderFilter("offset", str(offset)),
                HeaderFilter("group", _exact(settings.group_id)),
            ]
        )
        job = ReplayJob(
            bootstrap_servers=settings.bootstrap_servers,
            dlq_topic=dlq,
            selection=selection,
            kafka_config=settings.kafka_config,
            connect_timeout=settings.connect_timeout,
        )
        tally = Replayer(job).run()
        name = target_name(topic, partition, offset)
        (replayed if tally.total_replayed else missing).append(name)
    parts = []
    if replayed:
        parts.append(f"replayed {', '.join(replayed)} from {dlq} to their source topics")
    if missing:
        parts.append(
            f"nothing new in {dlq} for {', '.join(missing)} (replayed before, or not "
            "dead-lettered by this group)"
        )
    return Answer("ok" if replayed else "refused", "; ".join(parts))


def _exact(text: str) -> str:
    """A shell glob matching `text` only."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
