"""The web dashboard in headless Chromium, on a consumer with records flowing.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (dev extra);
skips with the reason when one is missing (`.ci/run` installs them when it can).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from parafka import Record
from parafka.testing import LocalBroker
from parafka.views.web import Dashboard

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
        assert "browser test" in browser.title

        def page() -> dict[str, Any]:
            values: dict[str, Any] = browser.execute_script(
                """
                const chart = document.getElementById("chart-throughput");
                return {
                  processed: document.getElementById("tile-processed").textContent,
                  samples: Number(chart.dataset.samples || 0),
                  status: document.getElementById("status").textContent,
                  letters: Array.from(
                    document.querySelectorAll("#letters tbody tr td:nth-child(3)"),
                    (cell) => cell.textContent),
                };
                """
            )
            return values

        first = _wait_for(page, lambda v: v["processed"].isdigit(), 15, "the first poll")
        assert first["status"] == "live"
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
