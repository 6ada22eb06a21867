"""`parafka top` against a running consumer on the local broker: the panel printed once,
and the live view redrawn on a terminal until Ctrl-C, which exits 0 without a traceback."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid

from parafka import Record
from parafka.cli.views.web import Dashboard
from parafka.testing import LocalBroker

from .helpers import consumer, wait_until
from .test_views_cli import _ANSI


def noop(record: Record) -> None:
    pass


def test_top_shows_a_running_consumer_once_and_live(broker: LocalBroker) -> None:
    topic = broker.new_topic(partitions=2)
    broker.produce(topic, [(None, b"%d" % i) for i in range(300)])
    pc = consumer(broker, noop, topic, f"g-{uuid.uuid4().hex[:8]}", ordering="partition")
    with pc, Dashboard(pc, port=0, title="group top-test", sample_every=0.2) as board:
        wait_until(lambda: pc.stats().processed == 300, 30, "the records")
        wait_until(
            lambda: (
                board.history.latest is not None and board.history.latest.stats.processed == 300
            ),
            5,
            "a sample with them",
        )
        env = {**os.environ, "COLUMNS": "160"}
        once = subprocess.run(
            [sys.executable, "-m", "parafka.cli", "top", "--url", board.url, "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert once.returncode == 0, once.stderr
        assert "group top-test" in once.stdout and "processed 300" in once.stdout
        assert f"{topic}[0]" in once.stdout and f"{topic}[1]" in once.stdout
        assert once.stderr == ""

        master, slave = pty.openpty()
        live = subprocess.Popen(
            [sys.executable, "-m", "parafka.cli", "top", "--url", board.url, "--interval", "0.2"],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env={**env, "LINES": "40", "TERM": "xterm"},
        )
        os.close(slave)
        output = b""
        try:
            deadline = time.monotonic() + 20
            while output.count(b"processed") < 3 and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    output += os.read(master, 65536)
            assert output.count(b"processed") >= 3, output[-2000:]  # redrawn
            live.send_signal(signal.SIGINT)
            assert live.wait(10) == 0
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            if live.poll() is None:
                live.kill()
            os.close(master)
        shown = _ANSI.sub("", output.decode(errors="replace"))
        assert "Traceback" not in shown and "error" not in shown
        assert "processed 300" in shown
        pc.stop()
