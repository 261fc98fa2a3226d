"""HTTP/1.1 behaviour of one worker over real sockets (the worker's server loop in-process).

Keep-alive, pipelining, chunked both ways, 100-continue, HEAD, sendfile, limits, slow
heads, overload 503, app errors and the graceful drain. The same server is exercised
through the real CLI and ServiceManager in test_wsgi_cli.py.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cotyledon.wsgi._connection import PREREAD_LIMIT
from tests.functional.wsgi_helpers import RawClient, serving, wait_until, wsgi_command
from tests.support.processes import Program

pytestmark = pytest.mark.timeout(60)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


def echo_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers what it saw: method, path, port of the peer, body size."""
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"", b"two,", b"three"])
    if path == "/lines":
        lines = list(environ["wsgi.input"])
        body = b"|".join(lines)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    body = environ["wsgi.input"].read() if path == "/body" else b""
    text = "{} {} {} {} {}".format(
        environ["REQUEST_METHOD"],
        path,
        environ.get("REMOTE_PORT"),
        len(body),
        environ.get("HTTP_X_AUTH_USER", "-"),
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text]


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        first = client.get("/a")
        second = client.get("/b")
        assert first.status == second.status == 200
        assert first.header("connection") is None
        assert first.body.split()[1:3] == [b"/a", second.body.split()[2]]
        assert first.header("content-length") == str(len(first.body))
        assert first.header("date")
        assert first.header("server") == "cotyledon"


def test_pipelined_requests_are_answered_in_order() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(
            b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % number for number in range(5))
            + b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            + b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        paths = [client.response().body.split()[1] for _ in range(7)]
        assert paths == [b"/0", b"/1", b"/2", b"/3", b"/4", b"/body", b"/last"]
        assert client.wait_closed()


def test_chunked_request_and_response() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(
            b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n"
        )
        assert client.response().body.split()[3] == b"7"
        resp = client.get("/stream")
        assert resp.header("transfer-encoding") == "chunked"
        assert resp.body == b"one,two,three"
        assert client.get("/again").status == 200  # still usable after chunked both ways


def test_input_iteration_by_lines() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"POST /lines HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\na\nbb\nccc\n")
        assert client.response().body == b"a\n|bb\n|ccc\n"


def test_expect_100_continue_is_sent_on_first_read() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(
            b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = client.head()
        assert interim.status == 100
        client.send(b"hello")
        resp = client.response()
        assert resp.status == 200
        assert resp.body.split()[3] == b"5"


def test_no_100_continue_when_the_app_does_not_read() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(
            b"POST /nobody HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        resp = client.head()
        assert resp.status == 200
        assert resp.header("connection") == "close"


def test_unread_body_closes_the_connection() -> None:
    # Past PREREAD_LIMIT the app is called with the body still arriving; it reads none.
    part = b"x" * (PREREAD_LIMIT + 10)
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + part)
        resp = client.response()
        assert resp.status == 200
        assert resp.header("connection") == "close"
        assert client.wait_closed()


def test_small_body_is_buffered_before_the_app_and_keeps_the_connection() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\npart")
        # No answer before the body is all there (a slow server could only make this
        # pass by accident, never fail).
        client.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)
        client.sock.settimeout(20)
        client.send(b"ial...")
        resp = client.response()
        assert resp.status == 200
        assert resp.header("connection") is None  # read by the server: no need to close
        assert client.get("/again").status == 200


def test_head_has_length_and_no_body() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = client.response("HEAD")
        assert resp.status == 200
        assert int(resp.header("content-length") or 0) > 0  # the length GET would have
        assert client.get("/after").body.startswith(b"GET /after")  # no stray body bytes


def test_http10_closes_by_default() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        resp = client.response()
        assert resp.status == 200
        assert client.wait_closed()


def test_no_keepalive_option() -> None:
    with serving(echo_app, keepalive=False) as (_, port), RawClient(("127.0.0.1", port)) as c:
        resp = c.get("/")
        assert resp.header("connection") == "close"
        assert c.wait_closed()


def test_underscore_headers_do_not_reach_the_app() -> None:
    with serving(echo_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        resp = client.get("/", "X-Auth_User: mallory\r\n")
        assert resp.body.split()[4] == b"-"
        resp = client.get("/", "X-Auth-User: alice\r\n")
        assert resp.body.split()[4] == b"alice"


@pytest.mark.parametrize(
    ("request_bytes", "status", "options"),
    [
        (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, {"max_request_line": 64}),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 20 + b"\r\n",
            431,
            {"max_header_count": 10},
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nX-A: " + b"b" * 300 + b"\r\n\r\n",
            431,
            {"max_header_size": 100},
        ),
        (
            b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n",
            413,
            {"max_body_size": 10},
        ),
        (
            (
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
            {},
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 400, {}),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n", 400, {}),
    ],
    ids=["line-414", "count-431", "size-431", "body-413", "cl-te-400", "no-host", "space-colon"],
)
def test_limits_and_bad_framing(request_bytes: bytes, status: int, options: Any) -> None:
    with serving(echo_app, **options) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(request_bytes)
        resp = client.response()
        assert resp.status == status
        assert resp.header("connection") == "close"
        assert client.wait_closed()


def test_chunked_body_over_the_limit_is_413() -> None:
    with serving(echo_app, max_body_size=5) as (_, port), RawClient(("127.0.0.1", port)) as c:
        c.send(
            b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n"
        )
        resp = c.response()
        assert resp.status == 413
        assert c.wait_closed()


def test_slow_request_head_gets_408() -> None:
    with serving(echo_app, header_timeout=0.3) as (_, port):
        with RawClient(("127.0.0.1", port)) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished
            resp = client.response()
            assert resp.status == 408
            assert client.wait_closed()
        with RawClient(("127.0.0.1", port)) as silent:
            assert silent.wait_closed()  # nothing sent: closed without a response
            assert not silent.buffer


def test_idle_keep_alive_connection_is_closed() -> None:
    with serving(echo_app, keepalive_timeout=0.2) as (server, port):
        with RawClient(("127.0.0.1", port)) as client:
            assert client.get("/").status == 200
            assert client.wait_closed()
            assert not client.buffer
        wait_until(lambda: server.connections == 0)


def test_overload_gets_a_fast_503() -> None:
    release = threading.Event()
    entered = threading.Event()

    def blocking_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        release.wait(30)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with (
        serving(blocking_app, threads=1, max_queue=0) as (_, port),
        RawClient(("127.0.0.1", port)) as busy,
        RawClient(("127.0.0.1", port)) as extra,
    ):
        busy.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(20)
        extra.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        rejected = extra.response()
        assert rejected.status == 503
        assert rejected.header("connection") == "close"
        release.set()
        assert busy.response().status == 200


def test_app_exception_before_the_head_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    def failing_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise ValueError("broken app")

    with serving(failing_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        resp = client.get("/")
        assert resp.status == 500
        assert b"broken app" not in resp.body
        assert client.wait_closed()
    assert "broken app" in caplog.text


def test_app_exception_after_the_head_aborts(caplog: pytest.LogCaptureFixture) -> None:
    def failing_stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        raise ValueError("mid-stream failure")

    with serving(failing_stream) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = client.head()
        assert head.status == 200
        assert client.wait_closed()
        assert b"0\r\n\r\n" not in client.buffer  # never a clean end of a truncated body
    assert "mid-stream failure" in caplog.text


def test_exc_info_replaces_the_response() -> None:
    def recovering_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-Stage", "first")])
        try:
            raise KeyError("oops")
        except KeyError:
            import sys

            start_response("503 Busy", [("Content-Length", "4")], sys.exc_info())
        return [b"busy"]

    with serving(recovering_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        resp = client.get("/")
        assert (resp.status, resp.reason, resp.body) == (503, "Busy", b"busy")
        assert resp.header("x-stage") is None


def test_close_is_always_called() -> None:
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"
            raise RuntimeError("late")

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body()

    with serving(app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert closed.wait(20)


def test_file_wrapper_uses_sendfile(tmp_path: Any) -> None:
    payload = os.urandom(300_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)

    def file_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](path.open("rb"))
        return wrapper

    with serving(file_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        resp = client.get("/")
        assert resp.header("content-length") == str(len(payload))
        assert resp.body == payload
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = client.response("HEAD")
        assert head.header("content-length") == str(len(payload))
        assert client.get("/").body == payload


def test_write_callable() -> None:
    def write_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Length", "11")])
        write(b"hello ")
        return [b"world"]

    with serving(write_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        assert client.get("/").body == b"hello world"
        assert client.get("/").body == b"hello world"


def test_graceful_stop_finishes_in_flight_requests() -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            release.wait(30)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"done"]

    with (
        serving(slow_app) as (server, port),
        RawClient(("127.0.0.1", port)) as idle,
        RawClient(("127.0.0.1", port)) as busy,
    ):
        assert idle.get("/warm").status == 200
        busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        assert entered.wait(20)
        result: list[bool] = []
        stopper = threading.Thread(target=lambda: result.append(server.stop(20)))
        stopper.start()
        assert idle.wait_closed()  # idle keep-alive connections go first
        release.set()
        resp = busy.response()
        assert (resp.status, resp.body) == (200, b"done")
        assert resp.header("connection") == "close"
        stopper.join(20)
        assert result == [True]


def test_system_exit_in_the_app_is_a_500_on_that_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def exiting_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/exit":
            raise SystemExit(3)
        return echo_app(environ, start_response)

    with serving(exiting_app) as (server, port):
        with RawClient(("127.0.0.1", port)) as client:
            resp = client.get("/exit")
            assert resp.status == 500
            assert resp.header("connection") == "close"
            assert client.wait_closed()
        wait_until(lambda: server.connections == 0)
        with RawClient(("127.0.0.1", port)) as client:
            assert client.get("/").status == 200
    assert caplog.text.count("SystemExit: 3") == 1  # logged once, with its traceback


def test_max_connections_leaves_new_clients_in_the_backlog_while_all_are_busy() -> None:
    release = threading.Event()
    entered = threading.Event()

    def blocking_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        release.wait(30)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with (
        serving(blocking_app, max_connections=1) as (server, port),
        RawClient(("127.0.0.1", port)) as first,
    ):
        try:
            first.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
            assert entered.wait(20)
            with RawClient(("127.0.0.1", port)) as second:
                second.send(b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n")
                # Not accepted while the only connection is busy (a slow server could
                # only make this pass by accident, never fail).
                second.sock.settimeout(0.3)
                with pytest.raises(TimeoutError):
                    second.sock.recv(1)
                second.sock.settimeout(20)
                assert server.connections == 1
                release.set()
                assert first.response().status == 200
                assert second.response().status == 200
        finally:
            release.set()


def test_at_max_connections_the_oldest_idle_connection_makes_room() -> None:
    with (
        serving(echo_app, max_connections=2) as (server, port),
        RawClient(("127.0.0.1", port)) as served,
        RawClient(("127.0.0.1", port)) as silent,
    ):
        assert served.get("/one").status == 200  # idle keep-alive, then a silent one
        wait_until(lambda: server.connections == 2)
        with RawClient(("127.0.0.1", port)) as third:
            assert third.get("/three").status == 200
            assert silent.wait_closed()  # never sent a byte: the first to go
            assert not silent.buffer
            assert served.get("/again").status == 200


def test_header_refused_by_the_protocol_becomes_a_500(caplog: pytest.LogCaptureFixture) -> None:
    def proxy_header_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Proxy-Connection", "keep-alive")])
        return [b"never sent"]

    with serving(proxy_header_app) as (_, port), RawClient(("127.0.0.1", port)) as client:
        resp = client.get("/")
        assert resp.status == 500
        assert b"never sent" not in resp.body
    assert "Proxy-Connection" in caplog.text or "hop-by-hop" in caplog.text


def test_a_body_still_arriving_when_the_worker_stops_is_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its request is in flight: not cut with the idle connections after DRAIN_LINGER."""
    monkeypatch.setattr("cotyledon.wsgi._worker.DRAIN_LINGER", 0.1)
    with (
        serving(echo_app) as (server, port),
        RawClient(("127.0.0.1", port)) as client,
        RawClient(("127.0.0.1", port)) as idle,
    ):
        client.send(b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        wait_until(lambda: any(c.pending for c in list(server._conns.values())))
        stopper = threading.Thread(target=server.stop, args=(10,))
        stopper.start()
        try:
            assert idle.wait_closed()  # the idle connections' linger is over
            client.send(b"world")
            resp = client.response()
            assert (resp.status, resp.body.split()[3]) == (200, b"10")
            assert resp.header("connection") == "close"
        finally:
            stopper.join(10)


# Proxy headers and trailers, through the real CLI in a subprocess (issues 9.5 and 10).

WHO_APP = """
import json

def app(environ, start_response):
    body = environ["wsgi.input"].read()
    seen = {
        "remote": environ["REMOTE_ADDR"],
        "scheme": environ["wsgi.url_scheme"],
        "path": environ["PATH_INFO"],
        "body": body.decode("latin-1"),
        "trailers": sorted(k for k in environ if k in ("HTTP_VARY", "HTTP_X_CHECKSUM")),
        "type": environ.get("CONTENT_TYPE"),
    }
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Length", str(len(data)))])
    return [data]
"""


def _start_who_app(program: type[Program], tmp_path: Path, *options: str) -> tuple[str, int]:
    (tmp_path / "whoapp.py").write_text(WHO_APP)
    prog = program(wsgi_command("--pythonpath", str(tmp_path), *options, "whoapp:app"))
    url = prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30)
    return "127.0.0.1", int(url.group(1))


def _seen(client: RawClient) -> dict[str, Any]:
    resp = client.response()
    assert resp.status == 200, resp
    seen: dict[str, Any] = json.loads(resp.body)
    return seen


def test_client_forwarded_header_is_ignored_behind_an_x_forwarded_proxy(
    program: type[Program], tmp_path: Path
) -> None:
    # What nginx sends with the usual proxy_set_header lines: its own X-Forwarded-For and
    # X-Forwarded-Proto, and the client's Forwarded passed through untouched.
    with RawClient(_start_who_app(program, tmp_path)) as client:
        client.send(
            b"GET /a HTTP/1.1\r\nHost: t\r\nForwarded: for=10.0.0.1;proto=https\r\n"
            b"X-Forwarded-For: 10.0.0.1, 203.0.113.9\r\nX-Forwarded-Proto: http\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: t\r\nForwarded: for=10.0.0.1;proto=https\r\n\r\n"
            b"GET /c HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: <script>\r\n\r\n"
        )
        first, second, third = _seen(client), _seen(client), _seen(client)
        assert (first["remote"], first["scheme"]) == ("203.0.113.9", "http")
        assert (second["remote"], second["scheme"]) == ("127.0.0.1", "http")
        assert third["remote"] == "127.0.0.1"  # not a valid address: the peer stays


def test_forwarded_family_ignores_x_forwarded(program: type[Program], tmp_path: Path) -> None:
    address = _start_who_app(program, tmp_path, "--forwarded-headers", "forwarded")
    with RawClient(address) as client:
        client.send(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-Proto: https\r\nForwarded: for=198.51.100.7;proto=https\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"X-Forwarded-Proto: https\r\n\r\n"
        )
        first, second = _seen(client), _seen(client)
        assert (first["remote"], first["scheme"]) == ("198.51.100.7", "https")
        assert (second["remote"], second["scheme"]) == ("127.0.0.1", "http")


def test_harmless_trailers_are_dropped_and_the_next_request_is_read(
    program: type[Program], tmp_path: Path
) -> None:
    with RawClient(_start_who_app(program, tmp_path)) as client:
        client.send(
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Trailer: Vary, Content-Type, X-Checksum\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n"
            b"Vary: Accept\r\nContent-Type: text/evil\r\nX-Checksum: sha256=abc\r\n\r\n"
            b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        first = _seen(client)
        assert (first["path"], first["body"]) == ("/up", "hello world")
        assert (first["trailers"], first["type"]) == ([], None)
        assert _seen(client)["path"] == "/next"
        # a trailer that would change the framing is still refused, and ends the connection
        client.send(
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\nContent-Length: 5\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        assert client.response().status == 400
        assert client.wait_closed()
        assert not client.buffer  # no answer to the smuggled request
