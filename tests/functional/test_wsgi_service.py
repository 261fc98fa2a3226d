"""WSGIService under the real ServiceManager, with a listening socket the program opens
itself: real forks, real signals, graceful drain on SIGTERM, workers replaced on SIGHUP.

(The CLI and ``cotyledon.wsgi.add()``, which also open the sockets and load the app, are
tested in test_wsgi_cli.py.)
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

PROGRAM = """
import logging
import socket
import sys

import cotyledon
from cotyledon.wsgi import ServerConfig, WSGIService
from examples.wsgi import sleep_app


def app(environ, start_response):
    print("request", environ["QUERY_STRING"], flush=True)
    return sleep_app.app(environ, start_response)


logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
logging.getLogger("cotyledon._service_worker").setLevel(logging.DEBUG)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print("port", listener.getsockname()[1], flush=True)
config = ServerConfig(workers=2, threads=4, graceful_timeout=20)
manager = cotyledon.ServiceManager(graceful_shutdown_timeout=30)
manager.add(WSGIService, workers=2, args=(app, config, [listener]))
manager.run()
"""


def start(program: type[Program]) -> tuple[Program, tuple[str, int]]:
    prog = program([sys.executable, "-c", PROGRAM])
    port = int(prog.wait_line(r"^port (\d+)", 30).group(1))
    wait_for(lambda: len(prog.workers()) == 2, 30, "two workers")
    return prog, ("127.0.0.1", port)


def test_workers_serve_requests(program: type[Program]) -> None:
    prog, address = start(program)
    with RawClient(address) as client:
        for _ in range(5):
            resp = client.get("/?ms=0")
            assert (resp.status, resp.body) == (200, b"slept 0 ms\n")
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0


def test_sigterm_lets_in_flight_requests_finish(program: type[Program]) -> None:
    prog, address = start(program)
    with RawClient(address) as busy:
        busy.send(b"GET /?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        prog.wait_line("request ms=1500", 30)
        prog.signal(signal.SIGTERM)
        prog.wait_line("Caught SIGTERM signal, graceful exiting of master process", 30)
        resp = busy.response()
        assert (resp.status, resp.body) == (200, b"slept 1500 ms\n")
        assert resp.header("connection") == "close"
    assert prog.wait(30) == 0
    assert not prog.descendants()


def test_sighup_replaces_workers_and_keeps_serving(program: type[Program]) -> None:
    prog, address = start(program)
    before = set(prog.workers())
    prog.signal(signal.SIGHUP)
    wait_for(
        lambda: len(prog.workers()) == 2 and not before & set(prog.workers()),
        30,
        "two new workers",
    )
    with RawClient(address) as client:
        assert client.get("/?ms=0").status == 200


def test_sigusr2_dumps_a_worker_stacks(program: type[Program]) -> None:
    prog, address = start(program)
    # The dump is armed when the worker's service is built, which the worker logs.
    worker = int(prog.wait_line(r"Run service wsgi\(\d\) \[(\d+)\]", 30).group(1))
    os.kill(worker, signal.SIGUSR2)
    prog.wait_line(r"most recent call first", 30)
    assert worker in prog.workers()  # the worker survives its dump
    with RawClient(address) as client:
        assert client.get("/?ms=0").status == 200
