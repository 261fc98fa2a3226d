"""The request-timeout watch thread with real threads and a real socket pair."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from cotyledon.wsgi._deadline_watch import GATEWAY_TIMEOUT, DeadlineWatch, RequestTimeout

pytestmark = pytest.mark.timeout(30)


def serve_in_thread(watch: DeadlineWatch, sock: socket.socket, body: object) -> dict[str, object]:
    """Run ``body()`` as a request's app in a thread; what happened to it."""
    result: dict[str, object] = {}

    def serve() -> None:
        ticket = watch.begin(sock, "GET", "/slow")
        try:
            body()  # type: ignore[operator]
            result["may_send"] = ticket.claim_head()
        except RequestTimeout:
            result["interrupted"] = True
        finally:
            watch.end()
        result["done"] = True

    thread = threading.Thread(target=serve)
    thread.start()
    result["thread"] = thread
    return result


def test_a_request_past_its_deadline_gets_504_and_its_thread_is_interrupted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck_reasons: list[str] = []
    watch = DeadlineWatch(0.2, 30.0, on_stuck=stuck_reasons.append)
    server, client = socket.socketpair()
    spin = threading.Event()

    def busy_python_loop() -> None:
        while not spin.is_set():  # Python code: the exception fires at once
            pass

    with caplog.at_level(logging.ERROR, "cotyledon.wsgi.request_timeout"):
        result = serve_in_thread(watch, server, busy_python_loop)
        client.settimeout(10)
        assert client.recv(1024) == GATEWAY_TIMEOUT
        assert client.recv(1024) == b""  # shut down: the client sees the end at once
        result["thread"].join(10)  # type: ignore[attr-defined]
    spin.set()
    assert result == {"interrupted": True, "done": True, "thread": result["thread"]}
    (record,) = caplog.records
    assert "GET /slow passed --request-timeout (0.2s)" in record.getMessage()
    assert "busy_python_loop" in record.getMessage()  # the serving thread's stack
    assert stuck_reasons == []
    watch.stop()
    server.close()
    client.close()


def test_a_thread_stuck_in_c_code_gets_its_client_answered_then_the_worker_replaced() -> None:
    stuck = threading.Event()
    reasons: list[str] = []

    def on_stuck(reason: str) -> None:
        reasons.append(reason)
        stuck.set()

    watch = DeadlineWatch(0.1, 0.2, on_stuck=on_stuck)
    server, client = socket.socketpair()
    release_r, release_w = socket.socketpair()
    # Blocked in C (a recv) well past the deadline: no bytecode runs, no exception yet.
    result = serve_in_thread(watch, server, lambda: release_r.recv(1))
    client.settimeout(10)
    assert client.recv(1024) == GATEWAY_TIMEOUT
    assert stuck.wait(10)
    assert reasons == ["request-timeout: GET /slow did not return"]
    release_w.send(b"x")  # the C call returns: the pending exception fires now
    result["thread"].join(10)  # type: ignore[attr-defined]
    assert result.get("interrupted") is True
    watch.stop()
    for s in (server, client, release_r, release_w):
        s.close()


def test_a_response_already_started_is_not_answered_twice() -> None:
    watch = DeadlineWatch(0.1, 30.0, on_stuck=lambda reason: None)
    server, client = socket.socketpair()
    started = threading.Event()

    def app() -> None:
        ticket = watch._tickets[threading.get_ident()][0]
        assert ticket.claim_head()
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # interrupted long before
            pass

    result = serve_in_thread(watch, server, app)
    assert started.wait(10)
    result["thread"].join(10)  # type: ignore[attr-defined]
    assert result.get("interrupted") is True
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1024)  # no 504 after a head: the serving side decides how to end
    watch.stop()
    server.close()
    client.close()


def test_requests_that_end_in_time_are_left_alone() -> None:
    watch = DeadlineWatch(5.0, 1.0, on_stuck=lambda reason: None)
    server, client = socket.socketpair()
    for _ in range(50):
        result = serve_in_thread(watch, server, lambda: None)
        result["thread"].join(10)  # type: ignore[attr-defined]
        assert result["may_send"] is True
        assert "interrupted" not in result
    assert len(watch._book) == 0
    watch.stop()
    server.close()
    client.close()
