"""Deploys behind a real load balancer: errors at the client, ours vs gunicorn gthread.

HAProxy (Debian's) runs in front of two instances of one server on 127.0.0.1, with
``retries 0`` and no redispatch (a Kubernetes Service does not retry either), checking
each instance every 100 ms. A bounded keep-alive client of the test suite
(``tests.functional.wsgi_helpers.Load``) sends requests through HAProxy while a
scenario runs; every request that does not get a complete 200 is an error.

Scenarios, for each server:

* rolling restart: SIGTERM one instance, start it again on the same port, wait until
  HAProxy sees it up, then the other one;
* scale down: SIGTERM one instance for good;
* reload with new code: the app's file changes, then SIGHUP to both masters.

Ours runs with ``--shutdown-delay 1`` and HAProxy checks its ``/readyz``; "ours, no
delay" is the same without a delay; gunicorn has no readiness endpoint, so HAProxy
checks ``GET /`` (the usual setup), and gunicorn runs without ``--preload`` so that its
SIGHUP loads new code (ours: ``--no-preload`` too, for the same reason).

Usage: python bench/lb_lifecycle.py [--servers ours,ours-no-delay,gunicorn]
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' harness

from _common import BenchError, log, machine, table, venv_bin

from tests.functional.wsgi_helpers import Load
from tests.support.haproxy import HAPROXY, SKIP_REASON, Backend, HAProxy
from tests.support.processes import Program, wait_for

APP = """
import os

VERSION = {version!r}

def app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""
SERVERS = ("ours", "ours-no-delay", "gunicorn")
CLIENTS = 4


def write_app(directory: Path, version: str) -> None:
    (directory / "lbapp.py").write_text(APP.format(version=version))


def _ours(delay: str) -> Callable[[str, Path], Backend]:
    def make(name: str, app_dir: Path) -> Backend:
        def argv(port: int, status_port: int) -> list[str]:
            return [
                sys.executable, "-m", "cotyledon.wsgi",
                "-b", f"127.0.0.1:{port}", "--status-port", str(status_port),
                "-w", "2", "-t", "4", "--shutdown-delay", delay, "--no-preload",
                "--pythonpath", str(app_dir), "lbapp:app",
            ]  # fmt: skip

        def discover(prog: Program) -> tuple[int, int]:
            port = prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30)[1]
            status = prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30)[1]
            return int(port), int(status)

        return Backend(name, argv, discover=discover, ready=lambda prog: None)

    return make


def _gunicorn(name: str, app_dir: Path) -> Backend:
    gunicorn = str(venv_bin("gunicorn", "gunicorn"))

    def argv(port: int, _check: int) -> list[str]:
        return [
            gunicorn, "-w", "2", "-k", "gthread", "--threads", "4",
            "--no-control-socket", "-b", f"127.0.0.1:{port}",
            "--chdir", str(app_dir), "lbapp:app",
        ]  # fmt: skip

    def discover(prog: Program) -> tuple[int, int]:
        return int(prog.wait_line(r"Listening at: http://127\.0\.0\.1:(\d+)", 30)[1]), 0

    def ready(prog: Program) -> None:
        prog.wait_line(r"Booting worker", 30)

    return Backend(name, argv, discover=discover, ready=ready)


MAKERS: dict[str, tuple[Callable[[str, Path], Backend], str, str]] = {
    # server: (backend factory, HAProxy check path, reload log line)
    "ours": (_ours("1"), "/readyz", r"Every \S+ worker was replaced"),
    "ours-no-delay": (_ours("0"), "/readyz", r"Every \S+ worker was replaced"),
    "gunicorn": (_gunicorn, "/", r"Booting worker"),
}


def _errors(load: Load) -> str:
    kinds = collections.Counter(f.split(":")[0] for f in load.failures)
    detail = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    return f"{len(load.failures)} / {load.ok + len(load.failures)}" + (
        f" ({detail})" if detail else ""
    )


def _more(load: Load, count: int) -> None:
    target = load.served() + count
    wait_for(lambda: load.served() >= target, 60, f"{count} more responses")


def rolling_restart(lb: HAProxy, backends: list[Backend], _app_dir: Path, _line: str) -> None:
    for backend in backends:
        backend.stop()
        backend.start()
        lb.wait_state(backend.name, "UP", 60)
        time.sleep(0.5)  # steady traffic to both before the next step (a benchmark pace)


def scale_down(lb: HAProxy, backends: list[Backend], _app_dir: Path, _line: str) -> None:
    backends[0].stop()
    lb.wait_state(backends[0].name, "DOWN", 60)


def reload_new_code(_lb: HAProxy, backends: list[Backend], app_dir: Path, line: str) -> None:
    write_app(app_dir, "v2")
    for backend in backends:
        assert backend.program is not None
        backend.program.signal(signal.SIGHUP)
        backend.program.wait_line(line, 60)


SCENARIOS = {
    "rolling restart": rolling_restart,
    "scale down": scale_down,
    "reload with new code": reload_new_code,
}


def run_scenario(server: str, scenario: str) -> str:
    make, check_path, reload_line = MAKERS[server]
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        work = Path(tmp)
        write_app(work, "v1")
        backends = [make(name, work) for name in ("a", "b")]
        lb: HAProxy | None = None
        try:
            for backend in backends:
                backend.start()
            lb = HAProxy(work, [b.spec for b in backends], check_path=check_path)
            for backend in backends:
                lb.wait_state(backend.name, "UP", 60)
            with Load(lb.address, clients=CLIENTS, max_seconds=120) as load:
                _more(load, 500)
                SCENARIOS[scenario](lb, backends, work, reload_line)
                _more(load, 500)
            return _errors(load)
        finally:
            for backend in backends:
                backend.close()
            if lb is not None:
                lb.close()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args(argv)
    servers = args.servers.split(",")
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown --servers {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    if HAPROXY is None:
        raise BenchError(SKIP_REASON)
    rows = []
    for scenario in SCENARIOS:
        row = [scenario]
        for server in servers:
            log(f"{scenario}: {server}")
            row.append(run_scenario(server, scenario))
        rows.append(row)
    out = "\n".join(
        [
            "## Deploys behind HAProxy: errors / requests at the client",
            "",
            (
                f"Machine: {machine()}. HAProxy with retries 0, checks every 100 ms;"
                f" {CLIENTS} keep-alive clients; 2 instances x 2 workers x 4 threads."
            ),
            "",
            table(["scenario", *servers], rows),
            "",
        ]
    )
    print(out)
    return out


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
