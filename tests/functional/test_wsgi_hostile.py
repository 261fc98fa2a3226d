"""Hostile clients against a real ``cotyledon-wsgi`` process tree (issue 9).

Slow request bodies, a worker whose threads are all busy while another has room, and
connections that send nothing: each test starts the real CLI on a free port, plays the
attack over real sockets and checks that a normal client is still served (every wait
has a deadline; no timing is asserted, only who gets an answer and which).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._connection import PREREAD_LIMIT
from tests.functional.test_wsgi_status import ready_pids, status
from tests.functional.test_wsgi_status import start as start_with_status
from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

LISTENING = r"Listening at http://127\.0\.0\.1:(\d+) "
DRIP_BOUND = 20.0  # seconds a dripping client goes on at most


def start(program: type[Program], *args: str) -> tuple[Program, tuple[str, int]]:
    prog = program([sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", *args])
    port = int(prog.wait_line(LISTENING, 30).group(1))
    return prog, ("127.0.0.1", port)


class Drip:
    """A client sending a request head then its body one byte every ``every`` seconds."""

    def __init__(self, address: tuple[str, int], head: bytes, every: float) -> None:
        self.client = RawClient(address, timeout=30)
        self.client.send(head)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        waited = 0.0
        while waited < DRIP_BOUND and not self._stop.wait(self._every):
            waited += self._every
            try:
                self.client.send(b"x")
            except OSError:  # the server gave up on us: the point of most tests here
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(DRIP_BOUND)
        self.client.close()


@contextlib.contextmanager
def dripping(address: tuple[str, int], count: int, every: float) -> Iterator[list[Drip]]:
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nx"
    drips = [Drip(address, head, every) for _ in range(count)]
    try:
        yield drips
    finally:
        for drip in drips:
            drip.close()


def test_dripping_bodies_do_not_hold_the_threads(program: type[Program]) -> None:
    """Before the fix each drip held a thread (the per-read wait never ran out)."""
    _, address = start(program, "-t", "2", "--body-min-rate", "0", "examples.wsgi.stream_app:app")
    with dripping(address, 4, 0.2):
        for _ in range(3):
            with RawClient(address, timeout=5) as client:  # the drips last 20 s
                assert client.get("/write").status == 200


def test_a_body_below_the_minimum_rate_gets_408(program: type[Program]) -> None:
    _, address = start(
        program,
        "--header-timeout",
        "0.5",
        "--body-min-rate",
        "100",
        "examples.wsgi.stream_app:app",
    )
    with dripping(address, 1, 0.1) as (drip,):  # 10 bytes/s: never idle for 0.5 s
        resp = drip.client.response()
        assert resp.status == 408
        assert resp.header("connection") == "close"
        assert drip.client.wait_closed()


def test_a_streamed_body_past_its_total_deadline_gets_408(program: type[Program]) -> None:
    """More than PREREAD_LIMIT: the app is reading it when the deadline passes."""
    _, address = start(
        program,
        "--body-timeout",
        "1",
        "--body-min-rate",
        "0",
        "examples.wsgi.stream_app:app",
    )
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n"
    drip = Drip(address, head + b"x" * (PREREAD_LIMIT + 1000), 0.1)
    try:
        resp = drip.client.response()
        assert resp.status == 408
        assert drip.client.wait_closed()
    finally:
        drip.close()


def test_a_stalled_body_is_a_counted_and_logged_408(program: type[Program]) -> None:
    """Issue 9 point 8: it was logged as a 500 and counted in the status page's 5xx."""
    prog, port, status_port = start_with_status(
        program,
        "--header-timeout",
        "0.5",
        "--access-log-file",
        "-",
        "examples.wsgi.stream_app:app",
    )
    with RawClient(("127.0.0.1", port)) as client:
        client.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n")
        client.send(b"0123456789")
        resp = client.response()
        assert resp.status == 408
        assert client.wait_closed()
    assert prog.wait_line(r'"POST /upload HTTP/1\.1" (\d+) ', 30).group(1) == "408"
    classes = wait_for(lambda: (c := status(status_port)["status_classes"])["4xx"] == 1 and c, 30)
    assert isinstance(classes, dict)
    assert classes["5xx"] == 0


@pytest.fixture
def sleeper_app(tmp_path: Path) -> Path:
    """An app whose /long requests block until the test writes ``release``."""
    (tmp_path / "blocking_app.py").write_text(
        f"""
import os, time
ROOT = {str(tmp_path)!r}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/long":
        open(os.path.join(ROOT, "entered-%d-%s" % (os.getpid(), environ["REMOTE_PORT"])), "w")
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(ROOT, "release")) and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Length", "2"), ("X-Worker-Pid", str(os.getpid()))])
    return [b"ok"]
"""
    )
    return tmp_path


def _entered(root: Path) -> list[str]:
    return [path.name.split("-")[1] for path in root.glob("entered-*")]


def test_a_full_worker_leaves_new_connections_to_a_sibling_with_room(
    program: type[Program], sleeper_app: Path
) -> None:
    """Issue 9 point 2: a worker with every thread busy kept accepting (up to twice its
    threads), and those connections waited behind the busy threads while the other
    worker had a free one."""
    _, port, status_port = start_with_status(
        program, "-w", "2", "-t", "2", "--pythonpath", str(sleeper_app), "blocking_app:app"
    )
    address = ("127.0.0.1", port)
    ready_pids(status_port, 2)  # a worker still booting has no room yet: it would wait
    longs = []
    try:
        for count in (1, 2, 3):  # three long requests: one worker is full, one has room
            client = RawClient(address, timeout=40)
            client.send(b"GET /long HTTP/1.1\r\nHost: t\r\n\r\n")
            longs.append(client)
            # The app holds a request 30 s: entering within 10 s means not queued.
            try:
                wait_for(lambda n=count: len(_entered(sleeper_app)) == n, 10)
            except AssertionError:
                print("ENTERED", count, _entered(sleeper_app))
                raise
        assert len(set(_entered(sleeper_app))) == 2  # the third went to the other worker
        for _ in range(6):
            with RawClient(address, timeout=5) as quick:
                assert quick.get("/quick", "Connection: close\r\n").status == 200
    finally:
        (sleeper_app / "release").write_text("")
        for client in longs:
            with contextlib.suppress(OSError, AssertionError):
                client.response()
            client.close()


def _silent_connections(address: tuple[str, int], count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        socks.append(sock)
    return socks


def test_silent_connections_over_the_limit_do_not_lock_out_a_client(
    program: type[Program],
) -> None:
    """Issue 9 point 3: with every slot taken by connections that send nothing, a new
    client waited for the header timeout; now the oldest silent one makes room."""
    _, address = start(
        program, "--max-connections", "20", "--header-timeout", "30", "examples.wsgi.hello:app"
    )
    socks = _silent_connections(address, 40)
    try:
        for _ in range(3):
            with RawClient(address, timeout=5) as client:
                assert client.get("/").status == 200
    finally:
        for sock in socks:
            sock.close()


def test_a_burst_of_silent_connections_is_accepted_at_full_speed(
    program: type[Program],
) -> None:
    """Connections just accepted hold a thread's room for a turn of the loop; they must not
    make a worker leave the listeners for FULL_RETRY after each few accepts (the backlog
    then drained at a few connections per 20 ms and a client behind 600 waited seconds)."""
    _, address = start(
        program, "-w", "2", "-t", "1", "--header-timeout", "30", "examples.wsgi.hello:app"
    )
    socks = _silent_connections(address, 600)
    try:
        with RawClient(address, timeout=4) as client:
            assert client.get("/").status == 200
    finally:
        for sock in socks:
            sock.close()
