"""The monitoring endpoint: `/metrics` (Prometheus) and `/healthz`, from one small HTTP
server thread that lives as long as the consumer.

`/metrics` is prometheus_client's WSGI app over a registry of our own; `/healthz` answers
200 or 503 with a short JSON body (health.py decides). Requests are served by daemon
threads; `stop()` closes the listening socket and joins the server thread.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from parafka.core.errors import ConfigError
from parafka.core.extras import require
from parafka.core.options import default
from parafka.core.stats import Stats
from parafka.core.timings import ChunkTimings
from parafka.observe.health import Health, HealthPolicy, assess

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """Where to serve the endpoint and when `/healthz` fails. Port 0 picks a free port."""

    port: int
    host: str = default("metrics_host")
    policy: HealthPolicy = field(default_factory=HealthPolicy)

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigError(f"metrics_port={self.port!r} is invalid: use a port number")
        if not 0 <= self.port <= 65535:
            raise ConfigError(
                f"metrics_port={self.port} is invalid: use a port from 1 to 65535 (0: any free)"
            )
        require("prometheus_client", "metrics_port= (--metrics-port)")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client never delays the consumer's exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("monitor: " + format, *args)


class MonitorServer:
    """Serves `/metrics` and `/healthz` on one port until `stop()`."""

    def __init__(self, host: str, port: int, metrics: WsgiApp, health: Callable[[], Health]):
        self._metrics = metrics
        self._health = health
        try:
            self._server = make_server(
                host, port, self._route, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"metrics port {port} is already in use: choose another --metrics-port "
                    "(metrics_port=) or stop what listens there"
                ) from None
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): choose "
                "another --metrics-port (metrics_port=)"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="parafka-monitor",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MonitorServer:
        self._thread.start()
        host, port = self._address()
        everywhere = str(self._server.server_address[0]) in ("0.0.0.0", "::")
        log.info(
            "metrics on http://%s:%d/metrics, health on /healthz%s",
            host,
            port,
            " (listening on every interface; --metrics-host 127.0.0.1 for this machine only)"
            if everywhere
            else "",
        )
        return self

    def stop(self) -> None:
        """Stop serving and release the port (waits for the server thread)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def _address(self) -> tuple[str, int]:
        host = str(self._server.server_address[0])
        return ("localhost" if host in ("0.0.0.0", "::") else host), self.port

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path in ("/healthz", "/health"):
            health = self._health()
            status = "200 OK" if health.ok else "503 Service Unavailable"
            return _reply(start_response, status, json.dumps(health.body), "application/json")
        if path == "/":
            return _reply(start_response, "200 OK", "parafka: /metrics /healthz\n", "text/plain")
        return _reply(start_response, "404 Not Found", "not found: try /metrics or /healthz\n")


def serve(
    settings: MonitorSettings,
    stats: Callable[[], Stats],
    clock: Callable[[], float],
    timings: ChunkTimings | None = None,
    info: dict[str, str] | None = None,
) -> MonitorServer:
    """Start serving `/metrics` and `/healthz` for the snapshots `stats()` returns
    (`clock` is the one the snapshots are timed with). Raises ConfigError when the port
    cannot be used."""
    from prometheus_client import make_wsgi_app

    from parafka.observe.metrics import StatsCollector, new_registry

    policy = settings.policy

    def health_of(snapshot: Stats) -> Health:
        return assess(snapshot, clock(), policy)

    collector = StatsCollector(stats, health_of, policy.stuck_after, timings, info)
    app = make_wsgi_app(new_registry(collector))
    server = MonitorServer(settings.host, settings.port, app, lambda: health_of(stats()))
    return server.start()


def _reply(
    start_response: StartResponse, status: str, text: str, kind: str = "text/plain"
) -> list[bytes]:
    body = text.encode()
    start_response(
        status, [("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]
