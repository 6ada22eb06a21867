"""The web dashboard in headless Chromium, on a consumer with records flowing.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (dev extra);
skips with the reason when one is missing (`.ci/run` installs them when it can).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parafka import Record
from parafka.cli.views.web import Dashboard
from parafka.core.stats import Stats
from parafka.testing import LocalBroker

from .helpers import consumer, wait_until

POISON = 5  # partition 0's record at this offset always fails: it is dead-lettered


def slow_handler(record: Record) -> None:
    """About a millisecond per record: a few thousand records take several seconds."""
    if record.partition == 0 and record.offset == POISON:
        raise ValueError(f"poison record {record.offset}")
    time.sleep(0.001)


def _tool(name: str, debian_path: str) -> str | None:
    found = shutil.which(name)
    return found or (debian_path if os.access(debian_path, os.X_OK) else None)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium driven by chromedriver, with the page's console log kept."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = _tool("chromium", "/usr/bin/chromium")
    driver_bin = _tool("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or driver_bin is None:
        pytest.skip(
            "chromium or chromedriver not found: install the Debian packages chromium and "
            "chromium-driver (apt-get install -y chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # containers and root have no usable sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1200",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(read: Callable[[], Any], ok: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(0.1)


def test_page_loads_charts_update_and_console_stays_clean(
    broker: LocalBroker, browser: Any
) -> None:
    topic = broker.new_topic(partitions=2)
    dead = broker.new_topic(partitions=1)
    broker.produce(topic, [(None, str(i).encode()) for i in range(20_000)])
    pc = consumer(
        broker,
        slow_handler,
        topic,
        f"g-{uuid.uuid4().hex[:8]}",
        ordering="partition",
        concurrency=2,
        max_attempts=1,
        dead_letter_topic=dead,
    )
    with pc, Dashboard(pc, port=0, title="browser test") as dashboard:
        wait_until(lambda: pc.stats().processed > 0, 30, "records to flow")
        browser.get(dashboard.url)
        # the page's script sets the title from the first poll's answer, not the HTML
        _wait_for(lambda: browser.title, lambda t: "browser test" in t, 15, "the page title")

        def page() -> dict[str, Any]:
            values: dict[str, Any] = browser.execute_script(
                """
                const chart = document.getElementById("chart-throughput");
                return {
                  processed: document.getElementById("tile-processed").textContent,
                  samples: Number(chart.dataset.samples || 0),
                  status: document.getElementById("status").textContent,
                  adviceHidden: document.getElementById("advice").hidden,
                  letters: Array.from(
                    document.querySelectorAll("#letters tbody tr td:nth-child(4)"),
                    (cell) => cell.textContent),
                };
                """
            )
            return values

        first = _wait_for(page, lambda v: v["processed"].isdigit(), 15, "the first poll")
        assert first["status"] == "live"
        assert first["adviceHidden"]  # a consumer with no advice shows no advice section
        later = _wait_for(
            page,
            lambda v: v["processed"] != first["processed"] and v["samples"] > first["samples"],
            15,
            "the processed count and the throughput chart to move",
        )
        assert int(later["processed"]) > int(first["processed"])
        assert later["status"] == "live"
        _wait_for(page, lambda v: str(POISON) in v["letters"], 15, "the dead letter listed")
        for chart in ("chart-lag", "chart-partitions", "chart-held", "chart-errors"):
            drawn = browser.execute_script(
                f"return document.getElementById('{chart}').dataset.samples"
            )
            assert drawn and int(drawn) > 0, chart
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
        pc.stop(drain=False)


class Advised:
    """A stats source whose consumer has given advice (observe/advice.py)."""

    LINE = "handlers take 7 us a record: `parafka run --processes auto` would use the idle core"

    def stats(self) -> Stats:
        return Stats(processed=12_345, advice=(self.LINE,))


def test_the_consumers_advice_is_on_the_page(browser: Any) -> None:
    with Dashboard(Advised(), port=0, title="advised", sample_every=0.05) as dashboard:
        browser.get(dashboard.url)

        def advice() -> dict[str, Any]:
            values: dict[str, Any] = browser.execute_script(
                """
                const section = document.getElementById("advice");
                return {
                  hidden: section.hidden,
                  shown: section.offsetHeight > 0,
                  lines: Array.from(section.querySelectorAll("li"), (li) => li.textContent),
                };
                """
            )
            return values

        seen = _wait_for(advice, lambda v: v["lines"], 15, "the advice listed")
        assert seen == {"hidden": False, "shown": True, "lines": [Advised.LINE]}
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors


CONTROL_TOKEN = "browser-control-token"
# PARAFKA_SAVE_SCREENSHOTS=1 writes the screenshot into the docs (else into tmp_path)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "control.png"


def test_control_plane_pause_skip_and_resume_from_the_page(
    broker: LocalBroker, browser: Any, tmp_path: Path
) -> None:
    """Click pause, see the partition paused, skip the record another partition is stuck
    on, click resume; the token stays out of the URL and the page. Takes the screenshot
    of docs/images/control.png (the actions just done; see SCREENSHOT)."""
    topic = broker.new_topic(partitions=2)
    released = threading.Event()

    def handler(record: Record) -> None:
        if record.partition == 0 and record.offset == 3:
            released.wait(60)  # stuck until the test ends: skipped from the page
        time.sleep(0.002)

    broker.produce(topic, [(None, b"%d" % i) for i in range(50)], partition=0)
    broker.produce(topic, [(None, b"%d" % i) for i in range(5_000)], partition=1)
    pc = consumer(
        broker, handler, topic, f"g-{uuid.uuid4().hex[:8]}", ordering="partition", concurrency=2
    )
    try:
        with pc, Dashboard(pc, port=0, title="orders", control_token=CONTROL_TOKEN) as board:
            wait_until(lambda: len(pc.stats().partitions) == 2, 30, "the assignment")
            browser.get(board.url)
            find = browser.find_element
            _wait_for(
                lambda: browser.execute_script(
                    "return document.querySelectorAll('#control-partitions tbody tr').length"
                ),
                lambda n: n == 2,
                15,
                "the partitions in the control table",
            )
            find("id", "control-token").send_keys(CONTROL_TOKEN)
            find("id", "token-use").click()

            def row(partition: int) -> dict[str, Any]:
                values: dict[str, Any] = browser.execute_script(
                    f"""
                    const row = document.querySelector(
                      '#control-partitions tr[data-partition="{topic}[{partition}]"]');
                    if (!row) return {{}};
                    return {{
                      state: row.querySelector("td.state").textContent,
                      buttons: Array.from(row.querySelectorAll("button"),
                                          (b) => b.dataset.action),
                      oldest: row.children[2].textContent,
                      answer: document.getElementById("control-status").textContent,
                    }};
                    """
                )
                return values

            def click(partition: int, action: str) -> None:
                """Click the button; the page redraws the table every refresh, so a button
                found just before a redraw is stale when clicked: find it again."""
                from selenium.common.exceptions import StaleElementReferenceException

                selector = (
                    f'#control-partitions tr[data-partition="{topic}[{partition}]"] '
                    f'button[data-action="{action}"]'
                )
                for _ in range(20):
                    try:
                        find("css selector", selector).click()
                        return
                    except StaleElementReferenceException:
                        time.sleep(0.1)
                raise AssertionError(f"{action} of partition {partition}: stale 20 times")

            _wait_for(lambda: row(1), lambda r: r.get("state") == "fetching", 15, "p1 listed")
            click(1, "pause")
            paused = _wait_for(lambda: row(1), lambda r: r["state"] == "paused", 15, "paused")
            assert paused["buttons"][0] == "resume"
            assert pc.stats().user_paused == ((topic, 1),)

            _wait_for(lambda: row(0), lambda r: r.get("oldest") == "3", 30, "p0 stuck at 3")
            click(0, "skip")
            _wait_for(
                lambda: row(0),
                lambda r: "skip" in r["answer"] and ": ok:" in r["answer"],
                15,
                "the skip's answer",
            )
            wait_until(lambda: pc.stats().skipped_by_operator == 1, 10, "the skip counted")
            _wait_for(
                lambda: browser.execute_script(
                    "return document.querySelectorAll('#actions tbody tr').length"
                ),
                lambda n: n >= 2,
                10,
                "the actions listed",
            )
            browser.set_window_size(1280, 1900)
            shot = SCREENSHOT if os.environ.get("PARAFKA_SAVE_SCREENSHOTS") else tmp_path / "c.png"
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
            browser.set_window_size(1280, 1200)

            click(1, "resume")
            _wait_for(lambda: row(1), lambda r: r["state"] == "fetching", 15, "resumed")
            wait_until(lambda: pc.stats().user_paused == (), 5, "the pause to end")
            page = browser.execute_script("return document.documentElement.outerHTML")
            assert CONTROL_TOKEN not in page and CONTROL_TOKEN not in browser.current_url
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
            pc.stop(drain=False)
    finally:
        released.set()
