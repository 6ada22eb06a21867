"""The web dashboard: one page with live charts and the JSON it polls, from the stdlib.

`Dashboard(consumer, port=8080)` samples `consumer.stats()` once a second into a history
of the last five minutes and serves it from a `ThreadingHTTPServer`:

- `/` the page (static/dashboard.html, .js, .css: hand-written, no third-party code);
- `/api/stats?since=SEQ` the samples numbered above SEQ, the partitions and the recent
  dead letters (webdata.py).

Two daemon threads (sampler, server) live between `start()` and `stop()`.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from parafka.errors import ConfigError
from parafka.recent import DeadLetterEvent
from parafka.stats import Stats
from parafka.views.history import History
from parafka.views.webdata import payload

log = logging.getLogger("parafka")

SAMPLE_EVERY = 1.0  # seconds between samples (the page polls as often)
KEEP = 300.0  # seconds of history served

_STATIC = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
}


class StatsSource(Protocol):
    """What the dashboard reads: a `ParallelConsumer`, or anything with `stats()`."""

    def stats(self) -> Stats: ...


class Dashboard:
    """Serves the web dashboard of `source` on `host:port` between `start()` and `stop()`.

    Port 0 picks a free port (see `port`/`url`). `start()` raises ConfigError when the port
    cannot be used. Dead-lettered records are listed when `source` has
    `recent_dead_letters()` (ParallelConsumer does).
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

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> Dashboard:
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
        return payload(samples, latest, events, title=self.title, keep=self.history.keep)

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "parafka-dashboard"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
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
        body = (resources.files("parafka.views") / "static" / name).read_bytes()
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
