"""The web dashboard: one page with live charts and the JSON it polls, from the stdlib.

`Dashboard(consumer, port=8080)` samples `consumer.stats()` once a second into a history
of the last five minutes and serves it from a `ThreadingHTTPServer`:

- `/` the page (static/dashboard.html, .js, .css: hand-written, no third-party code);
- `/api/stats?since=SEQ` the samples numbered above SEQ, the partitions, the recent
  dead letters and the recent operator actions (webdata.py);
- `POST /api/control/ACTION` (pause, resume, skip, park, replay): the control plane, off
  unless a control token is set (control.py answers them; the rules are in `_Guard`).

Two daemon threads (sampler, server) live between `start()` and `stop()`.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, urlsplit

from parafka.cli.views.history import History
from parafka.cli.views.webdata import control_json, payload
from parafka.core.errors import ConfigError
from parafka.core.lifecycle import Background
from parafka.core.recent import DeadLetterEvent
from parafka.core.stats import Stats
from parafka.engine.steering import ACTIONS, REPLAY, ActionEvent, Answer

log = logging.getLogger(__name__)

SAMPLE_EVERY = 1.0  # seconds between samples (the page polls as often)
KEEP = 300.0  # seconds of history served

_STATIC = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")  # bound there: the Host must name it too
CONTROL_PATH = "/api/control/"
MAX_BODY = 64 * 1024  # bytes of a control request's JSON
MIN_TOKEN = 8  # characters of a control token at least
# HTTP status per action result
_STATUS = {
    "ok": HTTPStatus.OK,
    "refused": HTTPStatus.CONFLICT,
    "failed": HTTPStatus.INTERNAL_SERVER_ERROR,
    "timeout": HTTPStatus.GATEWAY_TIMEOUT,
}
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
}


class StatsSource(Protocol):
    """What the dashboard reads: a `ParallelConsumer`, or anything with `stats()`."""

    def stats(self) -> Stats: ...


class Controllable(StatsSource, Protocol):
    """What the control plane acts on: a `ParallelConsumer`."""

    def control(
        self,
        action: str,
        topic: str,
        partition: int,
        offset: int | None = None,
        *,
        timeout: float = 5.0,
    ) -> Answer: ...

    def replay_dead_letters(self, records: Sequence[tuple[str, int, int]]) -> Answer: ...

    def control_actions(self) -> tuple[ActionEvent, ...]: ...


class Dashboard(Background):
    """Serves the web dashboard of `source` on `host:port` between `start()` and `stop()`.

    Port 0 picks a free port (see `port`/`url`). `start()` raises ConfigError when the port
    cannot be used. Dead-lettered records are listed when `source` has
    `recent_dead_letters()` (ParallelConsumer does). With `control_token`, the control
    plane's actions are served too (docs/operations.md, "The control plane"): each request
    must carry the token as `Authorization: Bearer TOKEN`.
    """

    def __init__(
        self,
        source: StatsSource,
        port: int,
        host: str = "127.0.0.1",
        *,
        title: str = "parafka",
        sample_every: float = SAMPLE_EVERY,
        keep: float = KEEP,
        control_token: str | None = None,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(
                f"dashboard port {port!r} is invalid: use a port from 1 to 65535 (0: any free)"
            )
        self.source = source
        self.host = host
        self.requested_port = port
        self.title = title
        self.sample_every = sample_every
        self.history = History(keep=keep)
        self._lock = threading.Lock()  # the sampler writes the history, requests read it
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._dead_letters: Callable[[], Sequence[DeadLetterEvent]] | None = getattr(
            source, "recent_dead_letters", None
        )
        self._token: bytes | None = None
        if control_token is not None:
            if len(control_token) < MIN_TOKEN or control_token != control_token.strip():
                raise ConfigError(
                    f"the control token must have at least {MIN_TOKEN} characters and no "
                    "surrounding spaces: generate one, e.g. with `openssl rand -hex 16`"
                )
            if not all(hasattr(source, name) for name in ("control", "control_actions")):
                raise ConfigError("a control token needs a ParallelConsumer to act on")
            self._token = control_token.encode()

    @property
    def control_enabled(self) -> bool:
        return self._token is not None

    def authorized(self, header: str | None) -> bool:
        """True when `header` (Authorization) carries the control token."""
        if self._token is None or header is None:
            return False
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> Self:
        try:
            self._server = _Server((self.host, self.requested_port), _Handler, self)
        except OSError as exc:
            where = f"{self.host}:{self.requested_port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"dashboard port {self.requested_port} is already in use: choose another "
                    "--dashboard-port (port=), or 0 for any free one"
                ) from None
            raise ConfigError(
                f"cannot serve the dashboard on {where} ({exc.strerror or exc}): choose "
                "another --dashboard-host or --dashboard-port"
            ) from None
        self._sample()
        server = self._server
        self._threads = [
            threading.Thread(target=self._sample_loop, name="parafka-dashboard-sampler"),
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="parafka-dashboard",
            ),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        log.info("dashboard on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop sampling and serving, release the port; waits for both threads."""
        self._stop.set()
        if self._server is not None:
            if self._threads:
                self._server.shutdown()
            for thread in self._threads:
                thread.join()
            self._server.server_close()
            self._server = None
        self._threads = []

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.sample_every):
            self._sample()

    def _sample(self) -> None:
        stats = self.source.stats()
        with self._lock:
            self.history.add(stats, time.monotonic(), time.time())

    def answer(self, since: int) -> dict[str, Any]:
        """The `/api/stats` document for a page that has the samples up to `since`."""
        with self._lock:
            samples = self.history.since(since)
            latest = self.history.latest
        events = self._dead_letters() if self._dead_letters is not None else None
        answer = payload(samples, latest, events, title=self.title, keep=self.history.keep)
        actions: Callable[[], tuple[ActionEvent, ...]] | None = getattr(
            self.source, "control_actions", None
        )
        stats = latest.stats if latest is not None else Stats()
        answer["control"] = control_json(
            self.control_enabled, stats.user_paused, actions() if actions is not None else ()
        )
        return answer

    def act(self, action: str, request: dict[str, Any]) -> Answer:
        """Apply one control action described by a request's JSON (checked here)."""
        source: Controllable = self.source  # type: ignore[assignment]  # checked in __init__
        if action == REPLAY:
            records = request.get("records")
            if not isinstance(records, list) or not records:
                raise _BadRequest('replay needs "records": [{"topic", "partition", "offset"}]')
            return source.replay_dead_letters([_coordinates(r, True) for r in records])
        record = action in ("skip", "park")
        topic, partition, offset = _coordinates(request, record)
        return source.control(action, topic, partition, offset if record else None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow browser never delays the consumer's exit

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], dashboard: Dashboard
    ) -> None:
        self.dashboard = dashboard
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that closed its connection is no news; never print a traceback.
        log.debug("dashboard: request from %s failed", client_address, exc_info=True)


class _BadRequest(ValueError):
    """A control request whose JSON does not say what to act on."""


def _coordinates(request: object, with_offset: bool) -> tuple[str, int, int]:
    """(topic, partition, offset) from a request's JSON object; offset -1 when not needed."""
    if not isinstance(request, dict):
        raise _BadRequest("the body must be a JSON object")
    topic, partition, offset = (request.get(k) for k in ("topic", "partition", "offset"))
    if not isinstance(topic, str) or not topic:
        raise _BadRequest('"topic" must be a topic name')
    if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
        raise _BadRequest('"partition" must be a partition number')
    if not with_offset:
        return topic, partition, -1
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _BadRequest('"offset" must be the record\'s offset')
    return topic, partition, offset


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "parafka-dashboard"

    def do_POST(self) -> None:
        """A control action. The rules, in order: the path names an action; the body is
        at most MAX_BODY bytes; actions are on (a token was set); the request is not
        cross-site (Sec-Fetch-Site, Origin); its body is JSON; it carries the token. Then
        the action is applied."""
        dashboard = self.server.dashboard
        path = urlsplit(self.path).path
        action = path.removeprefix(CONTROL_PATH)
        if not path.startswith(CONTROL_PATH) or action not in ACTIONS:
            self._json(
                HTTPStatus.NOT_FOUND,
                "refused",
                f"no action at {path}: use " + ", ".join(CONTROL_PATH + a for a in ACTIONS),
            )
            return
        # Read the body before any answer: a client still sending it when the connection
        # closes may see a reset instead of the answer.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(
                HTTPStatus.BAD_REQUEST, "refused", f"the body must be JSON of 1 to {MAX_BODY} bytes"
            )
            return
        body = self.rfile.read(length)
        if not dashboard.control_enabled:
            self._json(
                HTTPStatus.FORBIDDEN,
                "refused",
                "control actions are off: start the consumer with --control-token "
                "(or PARAFKA_CONTROL_TOKEN; API: Dashboard(control_token=...))",
            )
            return
        why = self._cross_site()
        if why is not None:
            self._deny(action, HTTPStatus.FORBIDDEN, why)
            return
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            self._deny(
                action,
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "send the action as JSON (Content-Type: application/json)",
            )
            return
        if not dashboard.authorized(self.headers.get("Authorization")):
            given = "a wrong token" if self.headers.get("Authorization") else "no token"
            self._deny(
                action,
                HTTPStatus.UNAUTHORIZED,
                f"{given}: send the control token as 'Authorization: Bearer TOKEN'",
            )
            return
        try:
            try:
                request = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _BadRequest(f"the body is not JSON: {exc}") from None
            answer = dashboard.act(action, request)
        except (_BadRequest, ValueError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, "refused", str(exc))
            return
        self._json(_STATUS.get(answer.result, HTTPStatus.OK), answer.result, answer.message)

    def _cross_site(self) -> str | None:
        """Why the request looks cross-site (a page of another origin posting here), or
        None. Browsers send Sec-Fetch-Site and Origin; curl and scripts send neither."""
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        host = self.headers.get("Host") or ""
        try:
            name = urlsplit(f"//{host}").hostname
        except ValueError:  # not a host name at all
            name = None
        if self.server.dashboard.host in _LOOPBACK and name not in _LOOPBACK:
            # A page of another site whose name was made to resolve to 127.0.0.1 (DNS
            # rebinding) is same-origin to itself: its Host header gives it away.
            return f"request for host {host!r} refused: this dashboard serves localhost only"
        origin = self.headers.get("Origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return f"cross-site request refused (Origin {origin} is not this dashboard)"
        return None

    def _deny(self, action: str, status: HTTPStatus, why: str) -> None:
        """Refuse a request that fails a security rule: logged and counted, never
        applied (nothing of the request, the token least of all, is echoed)."""
        record = getattr(self.server.dashboard.source, "control_denied", None)
        if record is not None:
            record(action, f"from {self.client_address[0]}", why)
        self._json(status, "denied", why)

    def _json(self, status: HTTPStatus, result: str, message: str) -> None:
        body = json.dumps({"result": result, "message": message}).encode()
        self._send(status, body, "application/json")

    def _not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        body = b"control actions change state: use POST\n"
        self.send_header("Allow", "POST")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(CONTROL_PATH):
            self._not_allowed()
            return
        if url.path == "/api/stats":
            since = parse_qs(url.query).get("since", ["-1"])[0]
            try:
                seq = int(since)
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, b"since must be an integer\n", "text/plain")
                return
            body = json.dumps(self.server.dashboard.answer(seq)).encode()
            self._send(HTTPStatus.OK, body, "application/json")
            return
        static = _STATIC.get(url.path)
        if static is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found: the dashboard is at /\n", "text/plain")
            return
        name, kind = static
        body = (resources.files("parafka.cli.views") / "static" / name).read_bytes()
        self._send(HTTPStatus.OK, body, kind)

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in _SECURITY.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)
