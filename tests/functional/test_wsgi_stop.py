"""The stop sequence of a real cotyledon-wsgi: probes, shutdown delay, accept-queue drain.

A load balancer needs three things from a stopping backend: a readiness probe that fails
at once (``/readyz``), time for its health checks to notice while new connections are
still served (``--shutdown-delay``), and no reset for a connection that the kernel had
already accepted when the listening sockets close (the accept queue is drained).
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.functional.test_wsgi_status import LISTENING, STATUS, fetch
from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

HOLD_APP = """
import os, socket

def app(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        # Blocks until the test's gate sends a byte: a request in flight for as long as
        # the test wants, with no sleep anywhere.
        with socket.create_connection(("127.0.0.1", int(os.environ["GATE_PORT"]))) as gate:
            gate.recv(1)
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def start(program: type[Program], *args: str, **kwargs: object) -> tuple[Program, int, int]:
    prog = program(
        [sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", "--status-port", "0", *args],
        **kwargs,  # type: ignore[arg-type]
    )
    port = int(prog.wait_line(LISTENING, 30).group(1))
    status_port = int(prog.wait_line(STATUS, 30).group(1))
    return prog, port, status_port


def probe(status_port: int, path: str) -> tuple[int, dict[str, object]]:
    code, ctype, body = fetch(status_port, path)
    assert ctype == "application/json"
    return code, json.loads(body)


def ready(status_port: int) -> bool:
    return probe(status_port, "/readyz")[0] == 200


def test_readyz_turns_503_at_sigterm_while_the_delay_still_serves(
    program: type[Program],
) -> None:
    prog, port, status_port = start(
        program, "-w", "2", "--shutdown-delay", "30", "examples.wsgi.hello:app"
    )
    # /readyz is 200 from the first ready worker on: wait for both.
    wait_for(lambda: probe(status_port, "/readyz")[1]["ready_workers"] == 2, 30, "2 ready")
    assert ready(status_port)
    assert probe(status_port, "/livez") == (200, {"status": "alive"})

    prog.signal(signal.SIGTERM)
    prog.wait_line(r"Stopping: /readyz answers 503; serving 30s more", 10)
    code, body = probe(status_port, "/readyz")
    assert code == 503
    assert body["reason"] == "stopping"
    assert body["phase"] == "delaying"
    assert probe(status_port, "/livez")[0] == 200
    # The listeners are still open and served: new connections and keep-alive both work.
    for _ in range(5):
        with RawClient(("127.0.0.1", port)) as client:
            assert client.get("/").status == 200
    assert prog.proc.poll() is None
    prog.signal(signal.SIGINT)  # the fast stop cuts the delay short
    prog.wait(30)  # exits at once, whatever the delay left


def test_after_the_delay_the_listeners_close_and_the_server_exits(
    program: type[Program],
) -> None:
    prog, port, status_port = start(
        program, "-w", "2", "--shutdown-delay", "0.5", "examples.wsgi.hello:app"
    )
    wait_for(lambda: ready(status_port), 30, "/readyz 200")
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


class Gate:
    """A TCP server on 127.0.0.1 that holds every app request until :meth:`open`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._arrived = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._arrived:
                self.held.append(conn)
                self._arrived.notify_all()

    def wait_held(self, count: int) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.held) >= count, 30)

    def open(self) -> None:
        with self._arrived:
            for conn in self.held:
                conn.sendall(b"x")
                conn.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_waiting_in_the_accept_queue_is_served_not_reset(
    program: type[Program], tmp_path: Path
) -> None:
    (tmp_path / "hold_app.py").write_text(HOLD_APP)
    gate = Gate()
    try:
        # One worker that takes one connection at a time: a second client waits in the
        # kernel's accept queue while the first one's request is held in the app.
        prog, port, status_port = start(
            program,
            "-w",
            "1",
            "-t",
            "1",
            "--max-connections",
            "1",
            "--pythonpath",
            str(tmp_path),
            "hold_app:app",
            env={"GATE_PORT": str(gate.port)},
        )
        wait_for(lambda: ready(status_port), 30, "/readyz 200")
        first = RawClient(("127.0.0.1", port))
        first.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        gate.wait_held(1)
        queued = RawClient(("127.0.0.1", port))  # completes in the kernel, not accepted
        queued.send(b"GET /queued HTTP/1.1\r\nHost: t\r\n\r\n")

        prog.signal(signal.SIGTERM)
        wait_for(
            lambda: probe(status_port, "/json")[1]["workers"][0]["status"] == "draining",  # type: ignore[index]
            30,
            "the worker draining",
        )
        gate.open()
        assert first.response().body == b"/hold"
        reply = queued.response()
        assert (reply.status, reply.body) == (200, b"/queued")
        assert (reply.header("connection") or "").lower() == "close"
        first.close()
        queued.close()
        assert prog.wait(30) == 0
    finally:
        gate.close()


def test_sigquit_is_the_fast_stop(program: type[Program]) -> None:
    prog, _port, status_port = start(
        program, "-w", "1", "--shutdown-delay", "30", "examples.wsgi.hello:app"
    )
    wait_for(lambda: ready(status_port), 30, "/readyz 200")
    prog.signal(signal.SIGQUIT)
    prog.wait_line(r"SIGQUIT: stopping at once", 10)
    prog.wait(20)  # long before the 30 s delay
    assert not prog.descendants()
