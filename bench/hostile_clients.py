"""Hostile clients against ``cotyledon-wsgi --workers 2 --threads 4`` (issue 9, points 1-3).

Four scenarios, each against a fresh server on 127.0.0.1, each measuring a *normal*
client (a new connection per request, ``Connection: close``) while the attack runs:

* ``drip``: 16 connections (workers x threads) send ``POST /upload`` with
  ``Content-Length: 100000`` and one body byte every 5 s;
* ``busy``: 4 requests that take 8 s (as many as one worker has threads), then the
  normal client's requests;
* ``silent``: 2,000 connections (2 x ``--max-connections``) that send nothing;
* ``slowloris``: 2,100 connections that send a request head one header line every
  2 s, and reconnect as soon as the server closes them.

Reported: the normal client's latency p50, p95 and max (its longest wait), and how many
requests failed (no complete answer within ``REQUEST_TIMEOUT``, counted as that wait).
About 30 s in all. ``--source DIR`` runs the server from another tree (for a
before/after: ``git archive main cotyledon | tar -x -C DIR``); the default is the
``cotyledon`` this Python imports.

    .venv/bin/python bench/hostile_clients.py [--source DIR] [--only drip,busy]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, RESULTS, Server, bind_socket, log, table, wait_http

REQUEST_TIMEOUT = 10.0  # seconds: a normal request with no answer by then failed
MEASURE = 5.0  # seconds of normal traffic per scenario
WORKERS, THREADS, MAX_CONNECTIONS = 2, 4, 1000


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/sleep?ms=N`` sleeps, ``/upload`` reads the body, anything else answers at once."""
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING", "ms=0").partition("=")[2] or 0) / 1000)
    body = b"%d\n" % len(environ["wsgi.input"].read()) if path == "/upload" else b"ok\n"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


# -- the normal client --------------------------------------------------------------------


def one_request(port: int, path: str = "/") -> float | None:
    """Seconds for a complete answer on a new connection; None when it failed."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                left = start + REQUEST_TIMEOUT - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return time.monotonic() - start if data.startswith(b"HTTP/1.1 200") else None


def measure(port: int, seconds: float = MEASURE) -> dict[str, Any]:
    """Sequential normal requests for ``seconds`` (the last may run up to its timeout)."""
    times: list[float] = []
    failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        took = one_request(port)
        if took is None:  # counted as a wait of REQUEST_TIMEOUT (at least)
            failed += 1
        times.append(REQUEST_TIMEOUT if took is None else took)
    times.sort()

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] if times else float("nan")

    return {"ok": len(times) - failed, "failed": failed, "p50": pct(0.5), "p95": pct(0.95),
            "max": times[-1] if times else float("nan")}  # fmt: skip


# -- the attacks --------------------------------------------------------------------------


class Attack:
    """A background thread keeping hostile connections up until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        except OSError:
            return None

    def run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Attack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(15)
        for sock in self.socks:
            sock.close()


class Drip(Attack):
    """16 request bodies, one byte every 5 s."""

    def run(self) -> None:
        head = b"POST /upload HTTP/1.1\r\nHost: b\r\nContent-Length: 100000\r\n\r\nx"
        for _ in range(2 * WORKERS * THREADS):  # 16, as in the attack run
            sock = self.connect()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.sendall(head)
                self.socks.append(sock)
        while not self.stopping.wait(5.0):
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.send(b"x")


class Busy(Attack):
    """As many 8 s requests as one worker has threads, started one after the other."""

    def run(self) -> None:
        for _ in range(THREADS):
            sock = self.connect()
            if sock is not None:
                sock.sendall(b"GET /sleep?ms=8000 HTTP/1.1\r\nHost: b\r\n\r\n")
                self.socks.append(sock)
            time.sleep(0.05)
        self.stopping.wait(30)


class Silent(Attack):
    """2 x --max-connections connections that send nothing."""

    def run(self) -> None:
        for _ in range(2 * MAX_CONNECTIONS):
            sock = self.connect()
            if sock is not None:
                self.socks.append(sock)
        self.stopping.wait(30)


class Slowloris(Attack):
    """2,100 connections sending a head one line every 2 s; reconnect when closed."""

    COUNT = 2100

    def run(self) -> None:
        live: dict[socket.socket, None] = {}
        next_line = time.monotonic()
        while not self.stopping.is_set():
            for _ in range(min(200, self.COUNT - len(live))):  # (re)connect, a batch a turn
                sock = self.connect()
                if sock is None:
                    break
                try:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\n")
                    sock.setblocking(False)
                except OSError:
                    sock.close()
                    continue
                live[sock] = None
            if time.monotonic() >= next_line:
                next_line += 2.0
                for sock in list(live):
                    try:
                        sock.send(b"X-Slow: 1\r\n")
                        if sock.recv(1024) == b"":
                            raise ConnectionError
                    except BlockingIOError:
                        continue
                    except OSError:
                        pass
                    del live[sock]  # closed or answered: reconnect it
                    sock.close()
            self.stopping.wait(0.05)
        self.socks = list(live)


SCENARIOS: dict[str, type[Attack]] = {
    "drip": Drip,
    "busy": Busy,
    "silent": Silent,
    "slowloris": Slowloris,
}


@contextlib.contextmanager
def server(source: Path | None, name: str) -> Iterator[int]:
    listener = bind_socket()
    port = listener.getsockname()[1]
    argv = [sys.executable, "-m", "cotyledon.wsgi", "-b", f"fd://{listener.fileno()}",
            "-w", str(WORKERS), "-t", str(THREADS), "--max-connections", str(MAX_CONNECTIONS),
            "--pythonpath", str(BENCH), "hostile_clients:app"]  # fmt: skip
    env = {"PYTHONPATH": str(source)} if source else None
    log_path = RESULTS / "logs" / f"hostile-{name}.log"
    with Server(argv, log_path, env=env, pass_fds=[listener.fileno()], cwd=source) as srv:
        listener.close()
        wait_http(port, server=srv)
        yield port


def run(source: Path | None, names: list[str]) -> list[list[str]]:
    rows = []
    for name in names:
        log(f"{name}: starting")
        with server(source, name) as port, SCENARIOS[name](port):
            time.sleep(1.0)  # let the attack take its place
            result = measure(port)
        rows.append(
            [
                name,
                f"{result['p50'] * 1000:.0f} ms",
                f"{result['p95'] * 1000:.0f} ms",
                f"{result['max'] * 1000:.0f} ms",
                f"{result['ok']}",
                f"{result['failed']}",
            ]
        )
        log(f"{name}: {rows[-1]}")
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, help="tree whose cotyledon/ the server runs")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * MAX_CONNECTIONS + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    names = [name for name in args.only.split(",") if name]
    rows = run(args.source.resolve() if args.source else None, names)
    text = table(["scenario", "p50", "p95", "max", "ok", "failed"], rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
