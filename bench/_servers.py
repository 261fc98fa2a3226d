"""How each WSGI server under test is started, and how wrk is run and read.

One place knows the command lines (gunicorn sync/gthread, waitress, ours) so that the
throughput and reload benchmarks start servers identically. Every server serves
bench/apps.py on 127.0.0.1 only; gunicorn and ours get a socket pre-bound by us
(``fd://N``); waitress binds port 0 itself and we read the port from its log.
This module measures nothing by itself beyond parsing wrk's report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BENCH,
    RESULTS,
    BenchError,
    Server,
    bind_socket,
    require_wrk,
    venv_bin,
    wait_for,
    wait_http,
    workers_of,
)

WORKERS = 2
THREADS = 8

SERVERS = ("gunicorn sync", "gunicorn gthread", "waitress", "ours")


@dataclass
class Running:
    """A started server: its process, port and the pid of its master (or only process)."""

    name: str
    server: Server
    port: int

    def worker_pids(self) -> list[int]:
        """Processes that serve requests: the workers, or the process itself if single."""
        return workers_of(self.server.pid) or [self.server.pid]

    def stop(self) -> None:
        self.server.stop()


def ours_available() -> str | None:
    """None if ``python -m cotyledon.wsgi --help`` works here, else why not."""
    probe = subprocess.run(
        [sys.executable, "-m", "cotyledon.wsgi", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH,
    )
    if probe.returncode == 0:
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def how_ours_runs() -> str:
    """A note for the tables: how our server was started."""
    return f"ours: python -m cotyledon.wsgi -w {WORKERS} -t {THREADS} -b fd://N apps:<app>"


def start(name: str, app: str, label: str, extra: list[str] | None = None) -> Running:
    """Start server ``name`` serving ``apps:<app>``; return once it answers HTTP."""
    log_path = RESULTS / "logs" / f"{label}.log"
    target = f"apps:{app}"
    if name == "waitress":
        argv = [
            str(venv_bin("waitress", "waitress-serve")),
            "--listen=127.0.0.1:0",
            f"--threads={THREADS}",
            *(extra or []),
            target,
        ]
        server = Server(argv, log_path)
        text = server.wait_output("Serving on http://127.0.0.1:")
        match = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", text)
        if match is None:
            server.stop()
            raise BenchError(f"no port in waitress output: {text[-500:]}")
        port = int(match.group(1))
    else:
        sock = bind_socket()
        port = sock.getsockname()[1]
        fd = sock.fileno()
        if name == "ours":
            argv = [sys.executable, "-m", "cotyledon.wsgi", "-w", str(WORKERS)]
            argv += ["-t", str(THREADS), "-b", f"fd://{fd}"]
        else:
            kind = name.split()[1]
            argv = [str(venv_bin("gunicorn", "gunicorn")), "-w", str(WORKERS), "-k", kind]
            if kind == "gthread":
                argv += ["--threads", str(THREADS)]
            argv += ["--no-control-socket", "-b", f"fd://{fd}"]
        argv += [*(extra or []), target]
        try:
            server = Server(argv, log_path, pass_fds=[fd])
        finally:
            sock.close()
    running = Running(name, server, port)
    try:
        wait_http(port, server=server)
        if name != "waitress":
            # Servers boot workers one by one: measure only once all of them are up.
            wait_for(lambda: len(workers_of(server.pid)) >= WORKERS, 30.0, f"{name} workers")
    except BenchError:
        server.stop()
        raise
    return running


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    error_detail: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s, p50/p99 and errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    errors = 0
    detail = []
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        names = ("connect", "read", "write", "timeout")
        counts = [int(g) for g in sock.groups()]
        errors += sum(counts)
        detail += [f"{n} {c}" for n, c in zip(names, counts, strict=True) if c]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
        detail.append(f"non-2xx {non2xx.group(1)}")
    if rps is None:
        raise BenchError(f"could not read wrk output:\n{output}")
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
        requests=int(total.group(1)) if total else 0,
        errors=errors,
        error_detail=", ".join(detail),
    )


def wrk(port: int, seconds: int, keepalive: bool, connections: int = 64) -> WrkResult:
    """Run wrk -t2 against 127.0.0.1:port for ``seconds``; bounded by its own timeout."""
    argv = [require_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", "5s"]
    if not keepalive:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}/")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


def results_dir() -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS
