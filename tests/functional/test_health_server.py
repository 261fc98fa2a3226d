"""The status port on a real socket (127.0.0.1, port 0), driven by a select loop like the
master's: every byte goes through HealthServer.read_fds/write_fds/handle_*."""

from __future__ import annotations

import errno
import http.client
import json
import math
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cotyledon.wsgi._health import (
    ACCEPT_PAUSE,
    DEFAULT_HOST,
    HealthServer,
    collect_sysinfo,
    cumulative_buckets,
    status_class_pairs,
    worker_rows,
)
from cotyledon.wsgi._health_render import Snapshot, WorkerRow, snapshot_from_json
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus
from tests.support.processes import wait_for

pytestmark = pytest.mark.timeout(60)


def small_snapshot(workers: int = 2) -> Snapshot:
    rows = tuple(
        WorkerRow(i, 1000 + i, 1, "ready", 10.0, 5 * i, i % 2, 0.2, 1 << 24)
        for i in range(workers)
    )
    return Snapshot(
        service="demo <app>",
        version="0.1",
        master_pid=os.getpid(),
        uptime=42.0,
        binds=("127.0.0.1:8000",),
        workers_configured=2,
        threads=4,
        workers=rows,
        requests_total=5,
        latency_sum=0.5,
        latency_buckets=((0.1, 5), (math.inf, 5)),
        status_classes=(("2xx", 5),),
    )


class Loop:
    """The master's loop in miniature: one select() over the server's fds, in a thread."""

    def __init__(self, server: HealthServer) -> None:
        self.server = server
        self.wake_r, self.wake_w = os.pipe()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                reads = [*self.server.read_fds(), self.wake_r]
                readable, writable, _ = select.select(reads, self.server.write_fds(), [], 0.5)
                if self.wake_r in readable:
                    return
                self.server.dispatch(readable, writable)
                self.server.expire()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        os.write(self.wake_w, b"x")
        self.thread.join(timeout=10)
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.server.close()
        if self.error is not None:
            raise self.error


@pytest.fixture
def serve() -> Iterator[Callable[..., HealthServer]]:
    loops: list[Loop] = []

    def start(snapshot: Callable[[], Snapshot] = small_snapshot, **kwargs: object) -> HealthServer:
        server = HealthServer(snapshot, **kwargs)  # type: ignore[arg-type]
        loops.append(Loop(server))
        return server

    yield start
    for loop in loops:
        loop.stop()


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def test_binds_localhost_by_default(serve: Callable[..., HealthServer]) -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    server = serve()
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0


def test_html_page(serve: Callable[..., HealthServer]) -> None:
    status, headers, body = get(serve(), "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["connection"] == "close"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert int(headers["content-length"]) == len(body)
    assert b"demo &lt;app&gt; status" in body
    assert b'http-equiv="refresh"' in body


def test_json_is_the_same_snapshot(serve: Callable[..., HealthServer]) -> None:
    status, headers, body = get(serve(), "/json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert snapshot_from_json(body) == small_snapshot()


def test_metrics_are_prometheus_text(serve: Callable[..., HealthServer]) -> None:
    status, headers, body = get(serve(), "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"cotyledon_http_requests", "cotyledon_http_request_duration_seconds"} <= names


def test_sysinfo(serve: Callable[..., HealthServer]) -> None:
    status, _, body = get(serve(), "/_sysinfo")
    assert status == 200
    data = json.loads(body)
    assert data == json.loads(json.dumps(collect_sysinfo(), default=str))
    assert data["sys_path"]
    assert data["pid"] == os.getpid()
    assert "python_build" in data


def test_unknown_path_is_404_and_query_is_ignored(serve: Callable[..., HealthServer]) -> None:
    server = serve()
    assert get(server, "/nope")[0] == 404
    assert get(server, "/json?pretty=1")[0] == 200


def test_only_get_and_head(serve: Callable[..., HealthServer]) -> None:
    server = serve()
    status, headers, _ = get(server, "/", method="POST")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    status, headers, body = get(server, "/json", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["content-length"]) > 0


def raw_exchange(server: HealthServer, data: bytes) -> bytes:
    with socket.create_connection(server.address, timeout=20) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_request_gets_400_and_the_server_goes_on(
    serve: Callable[..., HealthServer],
) -> None:
    server = serve()
    reply = raw_exchange(server, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    reply = raw_exchange(server, b"GARBAGE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert get(server, "/")[0] == 200


def test_oversized_head_is_refused(serve: Callable[..., HealthServer]) -> None:
    server = serve()
    reply = raw_exchange(server, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 414 ")


def test_silent_client_is_cut_off_by_the_deadline(serve: Callable[..., HealthServer]) -> None:
    now = [100.0]
    server = serve(clock=lambda: now[0], timeout=5.0)
    with socket.create_connection(server.address, timeout=20) as idle:
        # Once accepted, the loop knows when to wake up.
        def accepted() -> float | None:
            return server.next_deadline()

        deadline = None
        for _ in range(400):
            deadline = accepted()
            if deadline is not None:
                break
            select.select([], [], [], 0.05)
        assert deadline == 105.0
        now[0] = 105.0  # the loop's next expire() closes it
        assert idle.recv(1) == b""
    assert server.next_deadline() is None


def test_response_larger_than_the_socket_buffer(serve: Callable[..., HealthServer]) -> None:
    """A 1+ MB page goes out in pieces through write_fds without blocking the loop."""
    big = small_snapshot(workers=6000)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)  # accepted sockets inherit
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    server = serve(lambda: big, sock=listener)
    with socket.create_connection(server.address, timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        # The rest waits for the socket to drain: the loop now watches it for writing...
        wait_for(server.write_fds, what="a partial write to be pending")
        # ...and while this client does not read, the server stays responsive to others.
        assert get(server, "/nope")[0] == 404
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) > 1_000_000
    assert snapshot_from_json(body) == big


def test_connection_cap_closes_the_oldest_idle_client(serve: Callable[..., HealthServer]) -> None:
    """Idle clients cannot lock the page out: one more at the cap closes the oldest."""
    server = serve(max_connections=2)
    with (
        socket.create_connection(server.address, timeout=20) as oldest,
        socket.create_connection(server.address, timeout=20) as newer,
    ):
        oldest.sendall(b"GET / HTTP/1.1\r\n")  # incomplete: idle
        newer.sendall(b"GET / HTTP/1.1\r\n")
        assert get(server, "/json")[0] == 200
        assert closed(oldest)  # to make room
        newer.sendall(b"Host: x\r\n\r\n")  # the newer one was kept
        assert newer.recv(12) == b"HTTP/1.1 200"


def closed(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF, or a reset: it had unread bytes)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class ShortListener:
    """A listening socket whose accept() fails with ``errno`` until ``fail`` is cleared."""

    def __init__(self, code: int) -> None:
        self.real = socket.create_server(("127.0.0.1", 0))
        self.code = code
        self.fail = True

    def fileno(self) -> int:
        return self.real.fileno()

    def setblocking(self, flag: bool) -> None:
        self.real.setblocking(flag)

    def getsockname(self) -> tuple[str, int]:
        return self.real.getsockname()  # type: ignore[no-any-return]

    def accept(self) -> tuple[socket.socket, object]:
        if self.fail:
            raise OSError(self.code, os.strerror(self.code))
        return self.real.accept()

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_accept_out_of_resources_rests_and_warns_once(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    listener = ShortListener(code)
    server = HealthServer(small_snapshot, sock=listener, clock=lambda: now[0])  # type: ignore[arg-type]
    with socket.create_connection(server.address, timeout=20) as client, caplog.at_level("INFO"):
        for _ in range(3):  # three failed rounds, a pause after each
            assert listener.fileno() in server.read_fds()
            server.dispatch([listener.fileno()])  # no traceback out of it
            assert listener.fileno() not in server.read_fds()
            assert server.next_deadline() == now[0] + ACCEPT_PAUSE
            now[0] += ACCEPT_PAUSE / 2
            server.expire()
            assert server.accept_paused
            now[0] += ACCEPT_PAUSE / 2
            server.expire()
            assert not server.accept_paused
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1
        assert os.strerror(code) in warnings[0].getMessage()
        listener.fail = False  # fds freed: the next round accepts, and says so once
        server.dispatch([listener.fileno()])
        assert server.next_deadline() == now[0] + 5.0  # the client's own deadline
        assert caplog.records[-1].getMessage() == "Status page: accepting connections again"
        client.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        for fd in server.read_fds():
            if fd != listener.fileno():
                select.select([fd], [], [], 20)
                server.dispatch([fd])
        assert client.recv(12) == b"HTTP/1.1 200"
    server.close()


def test_snapshot_from_a_real_scoreboard(serve: Callable[..., HealthServer]) -> None:
    board = Scoreboard(4, clock=lambda: 50.0)
    try:
        index = board.claim(generation=3)
        writer = board.writer(index, pid=777)
        writer.set_status(SlotStatus.READY)
        for code in (200, 200, 503):
            writer.request_started()
            writer.request_finished(0.03, code)
        stats = board.read_all()
        totals = board.totals(stats)
        rows = worker_rows(
            stats, now=60.0, memory={777: 1234}, last_restart={index: ("reload", 55.0)}
        )
        snapshot = Snapshot(
            service="board",
            version="0",
            master_pid=1,
            uptime=60.0,
            binds=(),
            workers_configured=1,
            threads=1,
            workers=rows,
            requests_total=totals.requests,
            latency_sum=totals.latency_sum,
            latency_buckets=cumulative_buckets(totals),
            status_classes=status_class_pairs(totals),
            rollout="replacing workers",
        )
        del writer
    finally:
        board.close()
    assert rows == (WorkerRow(index, 777, 3, "ready", 10.0, 3, 0, 10.0, 1234, "reload", 5.0),)
    assert snapshot.latency_buckets[-1] == (math.inf, 3)
    assert snapshot.latency_buckets[2] == (0.025, 0)
    assert snapshot.latency_buckets[3] == (0.05, 3)
    assert dict(snapshot.status_classes) == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 0, "5xx": 1}
    server = serve(lambda: snapshot)
    families = {
        f.name: f for f in text_string_to_metric_families(get(server, "/metrics")[2].decode())
    }
    count = [
        s.value
        for s in families["cotyledon_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert count == [3]
