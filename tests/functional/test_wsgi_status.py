"""The status page and hung-worker detection of a real cotyledon-wsgi process tree.

The server runs with ``--status-port 0``; the test reads the real port from the log,
checks the JSON against the real worker pids, parses /metrics with the Prometheus text
parser, loads the HTML in headless chromium (when installed), and stops a worker with
SIGSTOP to see it detected, its stacks dumped and the worker replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_health_browser import ARTIFACTS, CHROMIUM, chromium
from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

LISTENING = r"Listening at http://127\.0\.0\.1:(\d+) "
STATUS = r"Status page at http://127\.0\.0\.1:(\d+)/"


def start(program: type[Program], *args: str) -> tuple[Program, int, int]:
    prog = program(
        [sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", "--status-port", "0", *args]
    )
    port = int(prog.wait_line(LISTENING, 30).group(1))
    status_port = int(prog.wait_line(STATUS, 30).group(1))
    return prog, port, status_port


def fetch(port: int, path: str) -> tuple[int, str, str]:
    with RawClient(("127.0.0.1", port)) as client:
        resp = client.get(path)
    return resp.status, resp.header("content-type") or "", resp.body.decode()


def status(port: int) -> dict[str, Any]:
    code, ctype, body = fetch(port, "/json")
    assert code == 200
    assert ctype.startswith("application/json")
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def ready_pids(port: int, count: int) -> set[int]:
    def ready() -> set[int] | None:
        rows = status(port)["workers"]
        pids = {row["pid"] for row in rows if row["status"] == "ready"}
        return pids if len(pids) == count == len(rows) else None

    pids = wait_for(ready, 30, f"{count} ready workers on the status page")
    assert isinstance(pids, set)
    return pids


def test_json_metrics_and_sysinfo_describe_the_real_workers(program: type[Program]) -> None:
    prog, port, status_port = start(program, "-w", "2", "examples.wsgi.hello:app")
    pids = ready_pids(status_port, 2)
    assert pids == set(prog.workers())
    with RawClient(("127.0.0.1", port)) as client:
        for _ in range(5):
            assert client.get("/").status == 200
    data = wait_for(lambda: (d := status(status_port))["requests_total"] >= 5 and d, 10)
    assert isinstance(data, dict)
    assert data["master_pid"] == prog.proc.pid
    assert data["workers_configured"] == 2
    assert data["binds"] == [f"http://127.0.0.1:{port}"]
    assert sum(row["requests"] for row in data["workers"]) == 5
    assert all(row["memory"] and row["memory"] > 0 for row in data["workers"])
    assert data["status_classes"]["2xx"] == 5

    parser = pytest.importorskip("prometheus_client.parser")
    code, ctype, text = fetch(status_port, "/metrics")
    assert code == 200
    assert ctype.startswith("text/plain")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    requests = {s.labels["code"]: s.value for s in families["cotyledon_http_requests"].samples}
    assert requests["2xx"] == 5
    histogram = families["cotyledon_http_request_duration_seconds"]
    count = [s.value for s in histogram.samples if s.name.endswith("_count")]
    assert count == [5]

    code, _, body = fetch(status_port, "/_sysinfo")
    assert code == 200
    assert json.loads(body)["pid"] == prog.proc.pid
    assert fetch(status_port, "/nothing")[0] == 404


def test_status_page_listens_on_localhost_only_by_default(program: type[Program]) -> None:
    _, _, status_port = start(program, "examples.wsgi.hello:app")
    # Only 127.0.0.1 answers: the wildcard address for this port is free.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        with contextlib.suppress(OSError):
            probe.bind(("127.0.0.2", status_port))
            probe.listen(1)
            return
    pytest.fail("the status page port is bound beyond 127.0.0.1")


def test_a_stopped_worker_is_detected_dumped_and_replaced(program: type[Program]) -> None:
    prog, _, status_port = start(program, "-w", "2", "--timeout", "2", "examples.wsgi.hello:app")
    pids = ready_pids(status_port, 2)
    victim = min(pids)
    os.kill(victim, signal.SIGSTOP)
    line = prog.wait_line(rf"Worker \d \(pid {victim}\) silent for [\d.]+s \(--timeout 2s\)", 20)
    assert line
    prog.wait_line(r"Current thread 0x[0-9a-f]+ \(most recent call first\)", 10)
    prog.wait_line(rf"Child {victim} killed by signal SIGKILL", 10)
    new = ready_pids(status_port, 2)
    assert victim not in new
    assert pids - {victim} <= new
    data = status(status_port)
    assert data["restarts"] == {"hung": 1}
    reasons = {row["pid"]: row["last_restart_reason"] for row in data["workers"]}
    assert "hung" in reasons.values()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_real_status_page_in_a_headless_browser(program: type[Program]) -> None:
    _, _, status_port = start(program, "-w", "2", "examples.wsgi.hello:app")
    pids = ready_pids(status_port, 2)
    url = f"http://127.0.0.1:{status_port}/"
    ARTIFACTS.mkdir(exist_ok=True)
    dom = chromium("--dump-dom", url)
    for pid in pids:
        assert f">{pid}<" in dom
    assert "2 / 2 ready" in dom
    shot = ARTIFACTS / "status-page-live.png"
    with contextlib.suppress(FileNotFoundError):
        shot.unlink()
    chromium(f"--screenshot={shot}", "--window-size=1200,700", "--hide-scrollbars", url)
    assert Path(shot).read_bytes().startswith(b"\x89PNG")


def test_lifecycle_example_serves_its_status_page(program: type[Program]) -> None:
    prog = program.example("wsgi/lifecycle.py", "127.0.0.1:0", "0")
    port = int(prog.wait_line(LISTENING, 30).group(1))
    status_port = int(prog.wait_line(STATUS, 30).group(1))
    pids = ready_pids(status_port, 2)
    with RawClient(("127.0.0.1", port)) as client:
        assert client.get("/from-the-example").status == 200
    prog.wait_line(r'"GET /from-the-example HTTP/1\.1" 200 ', 10)  # the access log
    prog.signal(signal.SIGHUP)
    new = wait_for(lambda: (p := ready_pids(status_port, 2)) and not p & pids and p, 30)
    assert new
    assert status(status_port)["generation"] == 1
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
