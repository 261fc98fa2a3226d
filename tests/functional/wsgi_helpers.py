"""Helpers for the WSGI tests: a raw HTTP/1.1 client with deadlines and an in-process server.

The raw client reads responses itself (status, headers, Content-Length or chunked body) so
tests can pipeline, send malformed bytes, and see exactly when the server closes.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cotyledon.wsgi._config import make_config
from cotyledon.wsgi._worker import Server

TIMEOUT = 20.0


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


class RawClient:
    """One TCP (or unix) connection; every read has a deadline."""

    def __init__(self, address: Any, timeout: float = TIMEOUT) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        if isinstance(address, tuple) and ":" in address[0]:
            family = socket.AF_INET6
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buffer = bytearray()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed while reading a line")
        line, _, rest = bytes(self.buffer).partition(b"\r\n")
        self.buffer[:] = rest
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError("closed while reading a body")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def head(self) -> Response:
        status_line = self._line().decode("latin-1")
        version, status, reason = [*status_line.split(" ", 2), ""][:3]
        assert version in ("HTTP/1.1", "HTTP/1.0"), status_line
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        return Response(int(status), reason, headers)

    def response(self, method: str = "GET") -> Response:
        """Read one final response (1xx are skipped) with its body."""
        while True:
            resp = self.head()
            if resp.status >= 200:
                break
        if method == "HEAD" or resp.status in (204, 304):
            return resp
        length = resp.header("content-length")
        if (resp.header("transfer-encoding") or "").lower() == "chunked":
            resp.body = self._chunked(resp)
        elif length is not None:
            resp.body = self._exactly(int(length))
        else:
            while self._fill():
                pass
            resp.body, self.buffer[:] = bytes(self.buffer), b""
        return resp

    def _chunked(self, resp: Response) -> bytes:
        body = bytearray()
        while True:
            size = int(self._line().split(b";")[0], 16)
            if not size:
                break
            body += self._exactly(size)
            assert self._exactly(2) == b"\r\n"
        while True:
            line = self._line()
            if not line:
                return bytes(body)
            name, _, value = line.decode("latin-1").partition(":")
            resp.trailers.append((name, value.strip()))

    def wait_closed(self) -> bool:
        """Read until EOF (True) or a reset (True); data after the last response fails."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            return True
        return True

    def get(self, path: str = "/", headers: str = "") -> Response:
        self.send(f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode("latin-1"))
        return self.response()


@contextlib.contextmanager
def serving(app: Callable[..., Any], **options: Any) -> Iterator[tuple[Server, int]]:
    """Run a worker's :class:`Server` in a thread on 127.0.0.1:<free port>."""
    config = make_config(**options)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    server = Server(app, config, [listener])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, listener.getsockname()[1]
    finally:
        server.stop(10)
        thread.join(10)
        listener.close()
        assert not thread.is_alive()


def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def wsgi_command(*args: str) -> list[str]:
    """``python -m cotyledon.wsgi -b 127.0.0.1:0 ARGS``: the CLI on a free port."""
    return [sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", *args]


class Load:
    """Keep-alive HTTP traffic from ``clients`` threads to 127.0.0.1 until stopped.

    Each thread sends GETs on one connection and opens a new one only when a response
    says ``Connection: close``. A request that gets no complete 200 response is a failure
    (connection refused, reset, closed before the response, timeout, other status).
    Bounded: every thread stops by itself after ``max_seconds``.
    """

    def __init__(
        self, address: Any, clients: int = 8, path: str = "/", max_seconds: float = 60.0
    ) -> None:
        self.address = address
        self.path = path
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [
            threading.Thread(target=self._client, name=f"load-{n}", daemon=True)
            for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def served(self) -> int:
        with self._lock:
            return self.ok

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _client(self) -> None:
        client: RawClient | None = None
        while self._running():
            try:
                if client is None:
                    client = RawClient(self.address, timeout=10)
                resp = client.get(self.path)
            except (OSError, AssertionError, ValueError) as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                if client is not None:
                    client.close()
                client = None
                continue
            with self._lock:
                if resp.status == 200:
                    self.ok += 1
                    self.pids.add(resp.header("X-Worker-Pid") or "")
                else:
                    self.failures.append(f"status {resp.status}")
            if (resp.header("connection") or "").lower() == "close":
                client.close()
                client = None
        if client is not None:
            client.close()
