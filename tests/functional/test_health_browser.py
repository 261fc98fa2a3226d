"""The status page rendered by a real headless browser (Debian's chromium).

Skipped when /usr/bin/chromium is absent. A screenshot is kept under test-artifacts/.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._health import HealthServer
from cotyledon.wsgi._health_render import Snapshot, WorkerRow
from tests.functional.test_health_server import Loop
from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
    ),
    pytest.mark.timeout(120),
]


def snapshot() -> Snapshot:
    rows = (
        WorkerRow(0, 4101, 2, "ready", 3725.0, 1200, 3, 0.4, 52 << 20, "max_requests", 60.0),
        WorkerRow(1, 4102, 2, "booting", 1.5, 0, 0, 0.1, None, "reload", 1.5),
        WorkerRow(2, 3999, 1, "draining", 7200.0, 9001, 1, 2.0, 80 << 20),
    )
    return Snapshot(
        service=f"shop {HOSTILE}",
        version="1.0",
        master_pid=4100,
        uptime=90061.0,
        binds=("127.0.0.1:8080",),
        workers_configured=3,
        threads=8,
        workers=rows,
        requests_total=10201,
        latency_sum=12.5,
        latency_buckets=((0.1, 10000), (math.inf, 10201)),
        restarts=(("max_requests", 4),),
        generation=2,
        rollout="rolling (SIGHUP): 0 pending, booting slot 1",
    )


@pytest.fixture
def page_url() -> Iterator[str]:
    loop = Loop(HealthServer(snapshot))
    host, port = loop.server.address
    yield f"http://{host}:{port}/"
    loop.stop()


def chromium(*args: str) -> str:
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={ARTIFACTS / 'chromium-profile'}",
        *args,
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out.decode(errors="replace")


def test_page_renders_and_escapes_in_a_real_browser(page_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    dom = chromium("--dump-dom", page_url)
    assert "<title>shop &lt;img" in dom  # the hostile name is text...
    assert "<title>pwned</title>" not in dom
    assert "<img" not in dom  # ...and never became an element, so its handler never ran
    assert dom.count('<tr class="ready">') == 1
    assert dom.count('<tr class="booting">') == 1
    assert dom.count('<tr class="draining">') == 1
    assert "1 / 3 ready" in dom
    assert "max_requests (1m ago)" in dom
    assert "52.0 MiB" in dom
    assert "<script" not in dom


def test_screenshot_is_kept(page_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "health-page.png"
    with contextlib.suppress(FileNotFoundError):
        shot.unlink()
    chromium(f"--screenshot={shot}", "--window-size=1200,700", "--hide-scrollbars", page_url)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000
