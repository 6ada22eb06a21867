"""The web dashboard's HTTP server, fed by a fake stats source (no broker, no browser)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from parafka.cli.views.web import Dashboard
from parafka.core.errors import ConfigError
from parafka.core.stats import PartitionStats, Stats


class Counting:
    """Each `stats()` call has processed 100 more records."""

    def __init__(self) -> None:
        self.calls = 0

    def stats(self) -> Stats:
        self.calls += 1
        part = PartitionStats("t", 0, 5, 5, 10, 5, 0, 0)
        return Stats(processed=100 * self.calls, partitions=(part,))


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    with Dashboard(Counting(), port=0, title="group g", sample_every=0.05) as running:
        yield running


def api(dashboard: Dashboard, since: int = -1) -> dict[str, Any]:
    status, headers, body = get(f"{dashboard.url}api/stats?since={since}")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    result: dict[str, Any] = json.loads(body)
    return result


def test_serves_the_page_and_its_script_with_a_strict_policy(dashboard: Dashboard) -> None:
    status, headers, body = get(dashboard.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert b'<script src="dashboard.js"' in body and b"http" not in body  # nothing external
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, _ = get(dashboard.url + name)
        assert status == 200 and headers["Content-Type"].startswith(kind)
    assert get(dashboard.url + "nothing")[0] == 404


def test_api_answers_new_samples_since_a_number(dashboard: Dashboard) -> None:
    first = api(dashboard)
    assert first["title"] == "group g" and first["keep"] == 300
    assert first["dead_letters"] is None  # the fake source does not list them
    assert first["partitions"][0]["lag"] == 5
    seen = first["latest_seq"]
    assert [s["seq"] for s in first["samples"]][-1] == seen

    deadline = time.monotonic() + 5
    while not (later := api(dashboard, seen)["samples"]):  # one every 0.05 s
        assert time.monotonic() < deadline, "no new sample within 5 s"
        time.sleep(0.02)
    assert all(s["seq"] > seen for s in later)
    assert later[-1]["processed"] > first["samples"][-1]["processed"]
    status, _, body = get(f"{dashboard.url}api/stats?since=x")
    assert status == 400 and b"integer" in body


def test_a_port_in_use_is_a_config_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"dashboard port {port} is already in use"):
            Dashboard(Counting(), port=port).start()


def test_stop_joins_its_threads_and_releases_the_port() -> None:
    before = set(threading.enumerate())
    dashboard = Dashboard(Counting(), port=0).start()
    port = dashboard.port
    assert get(dashboard.url)[0] == 200
    dashboard.stop()
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("parafka")]
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()  # nothing listens there any more


def test_an_invalid_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="70000"):
        Dashboard(Counting(), port=70000)
