"""The load-balancer tier: a real HAProxy in front of two real cotyledon-wsgi instances.

HAProxy health-checks each instance's ``/readyz`` on its status port every 100 ms, with
``retries 0`` and no redispatch: a request that an instance drops or refuses reaches the
client as an error, as through a Kubernetes Service. Under steady keep-alive load from our
bounded client, each scenario (a rolling restart, a scale-down, a reload with new code)
must end with zero non-2xx responses and zero connection errors; the counts are printed.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.wsgi_helpers import Load, RawClient
from tests.support.haproxy import HAPROXY, SKIP_REASON, Backend, HAProxy
from tests.support.processes import Program, wait_for

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(HAPROXY is None, reason=SKIP_REASON),
]

APP = """
import os

VERSION = {version!r}

def app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Length", str(len(body))),
                              ("X-Worker-Pid", str(os.getpid()))])
    return [body]
"""
CHECK_INTERVAL_MS = 100
SHUTDOWN_DELAY = "1"  # ten check intervals: HAProxy has marked the instance down by then


def write_app(directory: Path, version: str) -> None:
    (directory / "lbapp.py").write_text(APP.format(version=version))


def ours(name: str, app_dir: Path, *extra: str) -> Backend:
    def argv(port: int, status_port: int) -> list[str]:
        return [
            sys.executable, "-m", "cotyledon.wsgi",
            "-b", f"127.0.0.1:{port}", "--status-port", str(status_port),
            "-w", "2", "-t", "4",
            "--shutdown-delay", SHUTDOWN_DELAY,
            "--pythonpath", str(app_dir),
            *extra,
            "lbapp:app",
        ]  # fmt: skip

    def discover(prog: Program) -> tuple[int, int]:
        port = int(prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30).group(1))
        status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30)[1])
        return port, status_port

    return Backend(name, argv, discover=discover, ready=lambda prog: None)


@contextlib.contextmanager
def running_cluster(tmp_path: Path, *extra: str) -> Iterator[tuple[HAProxy, list[Backend], Path]]:
    """Two instances serving lbapp v1 behind HAProxy, both seen UP; all torn down after."""
    write_app(tmp_path, "v1")
    backends = [ours(name, tmp_path, *extra) for name in ("a", "b")]
    lb: HAProxy | None = None
    try:
        for backend in backends:
            backend.start()
        lb = HAProxy(
            tmp_path, [b.spec for b in backends], check_path="/readyz", inter_ms=CHECK_INTERVAL_MS
        )
        for backend in backends:
            lb.wait_state(backend.name, "UP")
        yield lb, backends, tmp_path
    finally:
        for backend in backends:
            backend.close()
        if lb is not None:
            assert not lb.close(), "haproxy left processes behind"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[HAProxy, list[Backend], Path]]:
    with running_cluster(tmp_path) as running:
        yield running


def more_traffic(load: Load, count: int) -> None:
    """Wait until ``count`` more requests were served."""
    target = load.served() + count
    wait_for(lambda: load.served() >= target, 30, f"{count} more responses")


def report(scenario: str, load: Load) -> None:
    kinds = collections.Counter(f.split(":")[0] for f in load.failures)
    print(f"\n{scenario}: {load.ok} responses 200, {len(load.failures)} errors {dict(kinds)}")
    assert load.ok > 0
    assert not load.failures, f"{scenario}: {len(load.failures)} errors: {dict(kinds)}"


def test_rolling_restart_loses_nothing(cluster: tuple[HAProxy, list[Backend], Path]) -> None:
    lb, backends, _ = cluster
    with Load(lb.address, clients=4, max_seconds=90) as load:
        wait_for(lambda: load.served() > 200, 30, "traffic through haproxy")
        for backend in backends:
            assert backend.stop() == 0
            backend.start()
            lb.wait_state(backend.name, "UP")
            more_traffic(load, 200)
    report("rolling restart", load)


def test_scaling_down_one_instance_loses_nothing(
    cluster: tuple[HAProxy, list[Backend], Path],
) -> None:
    lb, backends, _ = cluster
    with Load(lb.address, clients=4, max_seconds=90) as load:
        wait_for(lambda: load.served() > 200, 30, "traffic through haproxy")
        assert backends[0].stop() == 0
        lb.wait_state(backends[0].name, "DOWN")
        more_traffic(load, 500)
    report("scale down", load)


@pytest.mark.parametrize("preload", ["--no-preload", "--preload"])
def test_reload_with_new_code_loses_nothing(tmp_path: Path, preload: str) -> None:
    with running_cluster(tmp_path, preload) as (lb, backends, _):
        with Load(lb.address, clients=4, max_seconds=90) as load:
            wait_for(lambda: load.served() > 200, 30, "traffic through haproxy")
            write_app(tmp_path, "v2")
            for backend in backends:
                assert backend.program is not None
                backend.program.signal(signal.SIGHUP)
                backend.program.wait_line(r"Every \S+ worker was replaced", 60)
            more_traffic(load, 200)
        report(f"reload with new code ({preload})", load)
        for _ in range(4):  # round robin: both instances
            with RawClient(lb.address) as client:
                assert client.get("/").body == b"v2"
