"""The dashboard's control plane over HTTP, on a fake consumer: every security rule
(token, POST only, same origin, JSON, loopback by default, the token never shown) and the
request/answer shapes. The actions themselves run end to end in
tests/integration/test_control_plane.py."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from parafka.cli.views.web import Dashboard
from parafka.core.errors import ConfigError
from parafka.core.stats import PartitionStats, Stats
from parafka.engine.steering import ActionEvent, Answer, Steering
from parafka.observe import metrics
from parafka.observe.health import HealthPolicy, assess

TOKEN = "s3cret-token-for-tests"


class FakeConsumer:
    """Records what it was asked; answers ok. Its steering keeps the action log."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.steering = Steering()

    def stats(self) -> Stats:
        part = PartitionStats("orders", 0, 5, 5, 10, 5, 0, 0)
        return Stats(partitions=(part,), user_paused=(("orders", 0),))

    def control(
        self,
        action: str,
        topic: str,
        partition: int,
        offset: int | None = None,
        *,
        timeout: float = 5.0,
    ) -> Answer:
        self.calls.append((action, topic, partition, offset))
        answer = Answer("ok", f"{action} done")
        self.steering.record(action, f"{topic}[{partition}]", answer)
        return answer

    def replay_dead_letters(self, records: Sequence[tuple[str, int, int]]) -> Answer:
        self.calls.append(("replay", *records))
        return Answer("refused", "nothing new")

    def control_denied(self, action: str, source: str, why: str) -> None:
        self.steering.record(action, source, Answer("denied", why))

    def control_actions(self) -> tuple[ActionEvent, ...]:
        return self.steering.events()


def request(
    url: str,
    body: object = None,
    *,
    method: str = "POST",
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def fake() -> FakeConsumer:
    return FakeConsumer()


@pytest.fixture
def dashboard(fake: FakeConsumer) -> Iterator[Dashboard]:
    with Dashboard(fake, port=0, control_token=TOKEN) as running:
        yield running


def pause(dashboard: Dashboard, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    url = dashboard.url + "api/control/pause"
    return request(url, {"topic": "orders", "partition": 0}, **kwargs)


def test_with_the_token_an_action_is_applied_and_answered(
    dashboard: Dashboard, fake: FakeConsumer
) -> None:
    status, headers, body = pause(dashboard)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"result": "ok", "message": "pause done"}
    status, _, _ = request(
        dashboard.url + "api/control/skip", {"topic": "orders", "partition": 0, "offset": 7}
    )
    assert status == 200
    assert fake.calls == [("pause", "orders", 0, None), ("skip", "orders", 0, 7)]
    status, _, body = request(
        dashboard.url + "api/control/replay",
        {"records": [{"topic": "orders", "partition": 0, "offset": 7}]},
    )
    assert status == 409 and json.loads(body)["result"] == "refused"
    assert fake.calls[-1] == ("replay", ("orders", 0, 7))


def test_actions_are_off_without_a_token(fake: FakeConsumer) -> None:
    with Dashboard(fake, port=0) as plain:
        status, _, body = pause(plain)
        assert status == 403 and b"--control-token" in body
        assert json.loads(request(plain.url + "api/stats", method="GET")[2])["control"] == {
            "enabled": False,
            "paused": [{"topic": "orders", "partition": 0}],
            "actions": [],
        }
    assert fake.calls == []


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-of-same-size!", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"],
)
def test_a_missing_or_wrong_token_is_refused_and_counted(
    dashboard: Dashboard, fake: FakeConsumer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    status, _, body = pause(dashboard, token=None, headers=headers)
    assert status == 401 and json.loads(body)["result"] == "denied"
    assert fake.calls == []
    assert fake.steering.counts() == (("pause", "denied", 1),)


def test_state_changing_requests_are_post_only(dashboard: Dashboard, fake: FakeConsumer) -> None:
    for action in ("pause", "resume", "skip", "park", "replay"):
        status, headers, _ = request(dashboard.url + f"api/control/{action}", method="GET")
        assert status == 405 and headers["Allow"] == "POST", action
    assert fake.calls == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
def test_cross_site_requests_are_refused_even_with_the_token(
    dashboard: Dashboard, fake: FakeConsumer, headers: dict[str, str]
) -> None:
    status, _, body = pause(dashboard, headers=headers)
    assert status == 403 and b"cross-site" in body
    assert fake.calls == []


def test_same_origin_browser_requests_pass(dashboard: Dashboard, fake: FakeConsumer) -> None:
    origin = dashboard.url.rstrip("/")
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": origin}
    assert pause(dashboard, headers=headers)[0] == 200
    assert len(fake.calls) == 1


def test_only_json_bodies_are_accepted(dashboard: Dashboard, fake: FakeConsumer) -> None:
    url = dashboard.url + "api/control/pause"
    # What an HTML form or a CORS "simple request" can send from another site
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        req = urllib.request.Request(
            url,
            data=b'{"topic": "orders", "partition": 0}',
            method="POST",
            headers={"Content-Type": kind, "Authorization": f"Bearer {TOKEN}"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=5)
        assert caught.value.code == 415, kind
    status, _, body = request(url, {"topic": "orders"})
    assert status == 400 and b"partition" in body
    status, _, body = request(
        dashboard.url + "api/control/park", {"topic": "orders", "partition": 0}
    )
    assert status == 400 and b"offset" in body
    assert request(dashboard.url + "api/control/explode", {})[0] == 404
    assert fake.calls == []


def test_the_token_never_shows_in_logs_pages_or_answers(
    dashboard: Dashboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [pause(dashboard)[2], pause(dashboard, token="not-the-token")[2]]
    answers += [
        request(dashboard.url + path, method="GET", token=None)[2]
        for path in ("", "dashboard.js", "api/stats")
    ]
    assert caplog.records  # the actions were logged...
    assert TOKEN not in caplog.text  # ...without the token
    for body in answers:
        assert TOKEN.encode() not in body
    page = request(dashboard.url, method="GET", token=None)[2]
    assert b'type="password"' in page  # the page asks for it, never carries it


def test_the_dashboard_binds_loopback_unless_told() -> None:
    with Dashboard(FakeConsumer(), port=0, control_token=TOKEN) as running:
        assert running.host == "127.0.0.1"
        assert running._server is not None  # the bound address itself
        assert running._server.server_address[0] == "127.0.0.1"


@pytest.mark.parametrize("token", ["", "short", f" {TOKEN} "])
def test_a_weak_or_padded_token_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError, match="control token"):
        Dashboard(FakeConsumer(), port=0, control_token=token)


def test_the_page_lists_the_actions_and_the_metrics_count_them(
    dashboard: Dashboard, fake: FakeConsumer
) -> None:
    pause(dashboard)
    pause(dashboard, token=None)
    control = json.loads(request(dashboard.url + "api/stats", method="GET")[2])["control"]
    assert control["enabled"] is True
    assert [(a["action"], a["result"]) for a in control["actions"]] == [
        ("pause", "denied"),
        ("pause", "ok"),
    ]
    stats = Stats(control_actions=fake.steering.counts(), skipped_by_operator=2)
    collector = metrics.StatsCollector(
        lambda: stats, lambda s: assess(s, 0.0, HealthPolicy()), 60.0
    )
    from prometheus_client import generate_latest

    text = generate_latest(metrics.new_registry(collector)).decode()
    assert 'parafka_control_actions_total{action="pause",result="ok"} 1.0' in text
    assert 'parafka_control_actions_total{action="pause",result="denied"} 1.0' in text
    assert "parafka_records_operator_skipped_total 2.0" in text


def test_the_cli_dashboard_binds_loopback_by_default() -> None:
    from parafka.cli import run

    host = next(p for p in run.params if p.name == "dashboard_host")
    assert host.default == "127.0.0.1"


def test_a_foreign_host_name_is_refused_on_a_loopback_dashboard(
    dashboard: Dashboard, fake: FakeConsumer
) -> None:
    """DNS rebinding: evil.example resolved to 127.0.0.1 is same-origin to itself."""
    port = dashboard.port
    headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    status, _, body = pause(dashboard, headers=headers)
    assert status == 403 and b"localhost only" in body and fake.calls == []
    assert pause(dashboard, headers={"Host": f"localhost:{port}"})[0] == 200
