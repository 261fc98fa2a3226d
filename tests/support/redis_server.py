"""A real, throw-away Redis server for tests: Debian's ``redis-server`` on 127.0.0.1.

No persistence (``--save "" --appendonly no``): a restart comes back empty, as a Redis
that lost its data would, which is the harder case for group membership.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ConditionTimeout, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
NO_PERSISTENCE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")


def available() -> bool:
    return Path(REDIS_SERVER).is_file()


def _free_port() -> int:
    # redis-server binds by number: pick one the kernel just gave out; start() retries if
    # another process took it in between.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` keep the same port."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cotyledon-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, attempts: int = 5) -> None:
        for _ in range(attempts if not self.port else 1):
            port = self.port or _free_port()
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), *NO_PERSISTENCE, "--dir", self.dir],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for(
                    lambda p=port: _answers_ping(p) or self.proc.poll() is not None,  # type: ignore[union-attr]
                    timeout=10,
                    what="redis-server to answer PING",
                )
            except ConditionTimeout:
                self.stop()
                raise
            if self.proc.poll() is None:
                self.port = port
                return
        raise RuntimeError("redis-server could not start (port taken?)")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 (free port), stopped after the test; the test
    skips where Debian's redis-server is not installed."""
    if not available():
        pytest.skip(f"redis-server is not installed ({REDIS_SERVER} missing)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
