"""The cotyledon-wsgi command and the add() API, as real processes under the real manager.

Each test starts the server with port 0 (or a unix socket, or a socket it bound itself and
passes as fd://N), reads the real address from the "Listening at" line, talks HTTP over
real sockets, and stops the server with a signal. The `program` fixture fails the test if
any process is left behind.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.functional.wsgi_helpers import RawClient
from tests.support.fake_notify import FakeNotifySocket
from tests.support.processes import Program, proc_title, wait_for


def _missing(*names: str) -> list[str]:
    return [n for n in names if importlib.util.find_spec(f"cotyledon.wsgi.{n}") is None]


# Until the bind, listener and app-loader modules land, add() cannot open sockets.
_MISSING = _missing("_bind", "_listeners", "_app_loader")
pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(bool(_MISSING), reason=f"cotyledon.wsgi modules missing: {_MISSING}"),
]
needs_access_log = pytest.mark.skipif(
    bool(_missing("_access_log")), reason="cotyledon.wsgi._access_log missing"
)

LISTENING = r"Listening at (\S+) \((\d+) workers?, (\d+) threads?\)"


def start(program: type[Program], *args: str, env: dict[str, str] | None = None) -> Program:
    return program([sys.executable, "-m", "cotyledon.wsgi", *args], env=env)


def tcp_address(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"http://\[?([^\]]+?)\]?:(\d+)", url)
    assert match, url
    return match.group(1), int(match.group(2))


def serving_workers(prog: Program, count: int) -> list[int]:
    """Wait until the master has ``count`` worker processes; return their pids."""
    workers = wait_for(lambda: len(prog.workers()) == count and prog.workers(), 30)
    assert isinstance(workers, list)
    return workers


def stop(prog: Program, signum: int = signal.SIGTERM) -> int:
    prog.signal(signum)
    return prog.wait(30)


def test_readme_demo_serves_and_stops_cleanly(program: type[Program]) -> None:
    script = Path(sys.executable).with_name("cotyledon-wsgi")  # the console script itself
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "cotyledon.wsgi"]
    # The README's command, with free ports instead of 8000 and 8001.
    args = ["--workers", "2", "--status-port", "0", "-b", "127.0.0.1:0", "examples.wsgi.hello:app"]
    prog = program([*argv, *args])
    match = prog.wait_line(LISTENING, 30)
    assert match.group(2, 3) == ("2", "8")
    address = tcp_address(match.group(1))
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    serving_workers(prog, 2)
    with RawClient(address) as client:
        resp = client.get("/")
        assert (resp.status, resp.body) == (200, b"Hello, World!\n")
        assert client.get("/again").status == 200  # keep-alive through the real worker
    with RawClient(("127.0.0.1", status_port)) as client:
        page = client.get("/")
        assert page.status == 200
        assert b"cotyledon-wsgi" in page.body
    assert stop(prog) == 0
    assert not prog.descendants()


def test_ctrl_c_stops_the_server(program: type[Program]) -> None:
    prog = start(program, "-b", "127.0.0.1:0", "examples.wsgi.hello:app")
    listening = prog.wait_line(LISTENING, 30)
    assert listening.group(0).endswith("(1 worker, 8 threads)")
    address = tcp_address(listening.group(1))
    serving_workers(prog, 1)
    with RawClient(address) as client:
        assert client.get("/").status == 200
    stop(prog, signal.SIGINT)
    assert not prog.descendants()


def test_ctrl_c_is_a_quick_stop_that_cuts_requests_in_progress(program: type[Program]) -> None:
    """As documented (and as gunicorn's SIGINT): no waiting for a slow request, exit 1;
    SIGTERM is the graceful stop."""
    prog = start(program, "--status-port", "0", "-b", "127.0.0.1:0", "examples.wsgi.sleep_app:app")
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    _wait_ready_workers(status_port, 1)
    with RawClient(address) as client:
        client.send(b"GET /?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: _in_flight(status_port) == 1, 30, what="the slow request running")
        assert stop(prog, signal.SIGINT) == 1
        with pytest.raises((ConnectionError, OSError)):
            client.response()  # cut: no response at all
    assert "Caught SIGINT signal, instantaneous exiting" in prog.output()


def _in_flight(status_port: int) -> int:
    with RawClient(("127.0.0.1", status_port)) as client:
        data = json.loads(client.get("/json").body)
    return sum(int(worker["in_flight"]) for worker in data["workers"])


def test_python_m_titles_its_processes_cotyledon_wsgi(program: type[Program]) -> None:
    prog = start(program, "-b", "127.0.0.1:0", "examples.wsgi.hello:app")
    prog.wait_line(LISTENING, 30)
    (worker,) = serving_workers(prog, 1)
    master_title = wait_for(lambda: proc_title(prog.pid).startswith("cotyledon-wsgi: "), 30)
    assert master_title
    assert proc_title(prog.pid).startswith("cotyledon-wsgi: master process [cotyledon-wsgi ")
    wait_for(lambda: proc_title(worker) == "cotyledon-wsgi: wsgi worker(0)", 30)
    assert "__main__" not in proc_title(prog.pid) + proc_title(worker)


def test_pipelining_and_chunked_through_the_cli(program: type[Program]) -> None:
    prog = start(program, "-b", "127.0.0.1:0", "examples.wsgi.stream_app:app")
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    with RawClient(address) as client:
        client.send(
            b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        assert client.response().body == b"chunk 0\nchunk 1\nchunk 2\n"
        assert client.response().body == b"5\n"
        source = Path("examples/wsgi/stream_app.py").read_bytes()
        assert client.response().body == source


def test_unix_socket(program: type[Program], tmp_path: Path) -> None:
    path = tmp_path / "http.sock"
    prog = start(program, "-b", f"unix:{path}", "examples.wsgi.hello:app")
    prog.wait_line(LISTENING, 30)
    with RawClient(str(path)) as client:
        assert client.get("/").status == 200
    assert stop(prog) == 0


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback here")
def test_ipv6(program: type[Program]) -> None:
    prog = start(program, "-b", "[::1]:0", "examples.wsgi.hello:app")
    host, port = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    assert host == "::1"
    with RawClient((host, port)) as client:
        assert client.get("/").status == 200


def test_inherited_fd_and_several_binds(program: type[Program], tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    try:
        prog = program(
            [
                sys.executable,
                "-m",
                "cotyledon.wsgi",
                "-b",
                f"fd://{fd}",
                "-b",
                f"unix:{tmp_path / 's'}",
                "examples.wsgi.hello:app",
            ],
            pass_fds=[fd],
        )
        prog.wait_line(LISTENING, 30)
        prog.wait_line(LISTENING, 30)
    finally:
        listener.close()  # the server holds its own copy
    with RawClient(("127.0.0.1", port)) as client:
        assert client.get("/").status == 200
    with RawClient(str(tmp_path / "s")) as client:
        assert client.get("/").status == 200


def test_bad_app_stops_start_up(program: type[Program]) -> None:
    prog = start(program, "-w", "2", "-b", "127.0.0.1:0", "examples.wsgi.no_such_app:app")
    assert prog.wait(30) == 3
    output = prog.output()
    assert "no_such_app" in output
    assert "Listening at" not in output
    assert "Traceback" not in output


def test_bad_app_without_preload_stops_instead_of_crash_looping(program: type[Program]) -> None:
    """Each worker imports the app: when none can, the server stops with exit status 3 and
    one error line per worker, instead of respawning them while the port hangs clients."""
    prog = start(
        program, "--no-preload", "-w", "2", "-b", "127.0.0.1:0", "examples.wsgi.no_such_app:app"
    )
    prog.wait_line(LISTENING, 30)
    assert prog.wait(30) == 3
    output = prog.output()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "Worker cannot load the app" in line]
    assert 1 <= len(errors) <= 2  # one line per worker forked, none respawned
    assert all("no module named 'examples.wsgi.no_such_app'" in line for line in errors)
    assert "No worker could load the app: stopping (exit status 3)" in output
    assert "Child" not in output  # not reported as crashes, not respawned


def test_give_up_says_why_in_sd_notify_status(program: type[Program]) -> None:
    with FakeNotifySocket() as pid1:
        prog = start(
            program,
            "--no-preload",
            "-b",
            "127.0.0.1:0",
            "examples.wsgi.no_such_app:app",
            env=pid1.env(),
        )
        assert prog.wait(30) == 3
        stopping = pid1.wait_key("STOPPING", "1")
    assert stopping.fields["STATUS"] == (
        "stopping: no worker could load the WSGI app (see the worker's error line)"
    )


def test_bad_reload_without_preload_keeps_the_serving_workers(
    program: type[Program], tmp_path: Path
) -> None:
    module = tmp_path / "flaky_app.py"
    module.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'v1']\n"
    )
    prog = start(
        program,
        "--no-preload",
        "--pythonpath",
        str(tmp_path),
        "-b",
        "127.0.0.1:0",
        "--status-port",
        "0",
        "flaky_app:app",
    )
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    _wait_ready_workers(status_port, 1)
    module.write_text("raise RuntimeError('database unreachable')\n")
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Worker cannot load the app: .*database unreachable", 30)
    prog.wait_line(r"could not load the app; the workers already serving keep", 30)
    with RawClient(address) as client:
        assert client.get("/").body == b"v1"
    assert stop(prog) == 0


def _wait_ready_workers(status_port: int, count: int) -> None:
    def ready() -> bool:
        with RawClient(("127.0.0.1", status_port)) as client:
            data = json.loads(client.get("/json").body)
        return bool(data["ready_workers"] == count)

    wait_for(ready, 30, what=f"{count} ready worker(s)")


def test_max_restarts_gives_up_on_a_crashing_app(program: type[Program], tmp_path: Path) -> None:
    (tmp_path / "dying_app.py").write_text(
        "import os\n"
        "os._exit(7)  # every worker dies while importing: never ready, not a load error\n"
    )
    with FakeNotifySocket() as pid1:
        prog = start(
            program,
            "--no-preload",
            "--max-restarts",
            "2",
            "--restart-period",
            "60",
            "--pythonpath",
            str(tmp_path),
            "-b",
            "127.0.0.1:0",
            "dying_app:app",
            env=pid1.env(),
        )
        assert prog.wait(60) == 3
        stopping = pid1.wait_key("STOPPING", "1")
    assert "Service wsgi restarted more than 2 times in 60.0 s, giving up" in prog.output()
    assert (
        stopping.fields["STATUS"]
        == "stopping: wsgi restarted more than 2 times in 60 s, giving up"
    )


def test_app_raising_on_import_stops_start_up(program: type[Program], tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('database unreachable')\n")
    prog = start(program, "--pythonpath", str(tmp_path), "-b", "127.0.0.1:0", "broken_app:app")
    assert prog.wait(30) == 3
    assert "database unreachable" in prog.output()


def test_check_config(program: type[Program]) -> None:
    good = start(program, "--check-config", "examples.wsgi.hello:app")
    assert good.wait(30) == 0
    bad = start(program, "--check-config", "examples.wsgi.hello:nothing")
    assert bad.wait(30) == 1
    assert "nothing" in bad.output()


def test_web_concurrency_sets_workers(program: type[Program]) -> None:
    prog = start(
        program, "-b", "127.0.0.1:0", "examples.wsgi.hello:app", env={"WEB_CONCURRENCY": "3"}
    )
    assert prog.wait_line(LISTENING, 30).group(2) == "3"
    serving_workers(prog, 3)


def _access_lines(prog: Program, address: Any, count: int) -> list[str]:
    with RawClient(address) as client:
        for number in range(count):
            headers = "Referer: http://ref/\r\nUser-Agent: tester/1.0\r\n"
            assert client.get(f"/p{number}?q=1", headers).status == 200
    return [prog.wait_line(f"GET /p{number}", 30).string for number in range(count)]


@needs_access_log
def test_access_log_combined(program: type[Program]) -> None:
    prog = start(program, "-b", "127.0.0.1:0", "--access-log-file", "-", "examples.wsgi.hello:app")
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    (line,) = _access_lines(prog, address, 1)
    assert re.search(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /p0\?q=1 HTTP/1\.1" 200 \d+ ', line)
    assert '"http://ref/" "tester/1.0"' in line


@needs_access_log
def test_access_log_json(program: type[Program], tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    prog = start(
        program,
        "-b",
        "127.0.0.1:0",
        "--access-log-file",
        str(log),
        "--access-log-format",
        "json",
        "examples.wsgi.hello:app",
    )
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    with RawClient(address) as client:
        assert client.get("/json?x=1", 'User-Agent: a"b\\c\r\n').status == 200
    text = wait_for(lambda: log.exists() and log.read_text().strip(), 30)
    assert isinstance(text, str)
    record = json.loads(text.splitlines()[0])
    assert record["status"] == 200
    values = [str(value) for value in record.values()]
    assert any("/json?x=1" in value for value in values)
    assert 'a"b\\c' in values  # quote and backslash survive the JSON escaping


def test_overload_503_through_the_cli(program: type[Program]) -> None:
    prog = start(
        program,
        "-b",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--max-queue",
        "0",
        "examples.wsgi.sleep_app:app",
    )
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    with RawClient(address) as busy, RawClient(address) as extra:
        busy.send(b"GET /?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n")
        # The first request holds the only thread; keep trying until the worker has taken
        # it, then a second request must be refused at once.
        extra.send(b"GET /?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        first = extra.response()
        if first.status == 200:  # the pool was not busy yet: try again on a new connection
            with RawClient(address) as again:
                again.send(b"GET /?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
                first = again.response()
        assert first.status == 503
        assert busy.response().status == 200


def test_busy_worker_leaves_new_connections_to_an_idle_one(program: type[Program]) -> None:
    """A burst of connections is shared: a worker takes only what its threads can serve.

    Before the fix the first worker to wake accepted up to 16 waiting connections at
    once and queued them behind its one busy thread while the other worker stayed idle.
    """
    prog = start(program, "-w", "2", "-t", "1", "-b", "127.0.0.1:0", "examples.wsgi.sleep_app:app")
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    workers = serving_workers(prog, 2)
    clients = [RawClient(address) for _ in range(6)]  # all waiting in the backlog at once
    try:
        for client in clients:
            client.send(b"GET /?ms=200 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        responses = [client.response() for client in clients]
    finally:
        for client in clients:
            client.close()
    assert [resp.status for resp in responses] == [200] * 6
    pids = [int(resp.header("X-Worker-Pid") or 0) for resp in responses]
    assert set(pids) == set(workers), pids
    assert min(pids.count(pid) for pid in workers) >= 2, pids


def test_api_example_with_another_service(program: type[Program]) -> None:
    prog = program.example("wsgi/with_service.py", "127.0.0.1:0")
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    prog.wait_line(r"ticker 0 started", 30)
    with RawClient(address) as client:
        assert client.get("/").body == b"served next to a ticker\n"
    serving_workers(prog, 3)
    assert stop(prog) == 0


API_ERRORS = """
import sys
import cotyledon
import cotyledon.wsgi

manager = cotyledon.ServiceManager()
for app, bind in (("examples.wsgi.missing:app", "127.0.0.1:0"),
                  ("examples.wsgi.hello:app", sys.argv[1]),
                  ("examples.wsgi.hello:app", "not an address")):
    try:
        cotyledon.wsgi.add(manager, app, bind=bind)
    except (RuntimeError, OSError, ValueError) as exc:
        print("refused:", type(exc).__mro__[1].__name__, exc, flush=True)
try:
    cotyledon.wsgi.add(manager, "examples.wsgi.hello:app", workers=0)
except ValueError as exc:
    print("refused:", exc, flush=True)
"""


def test_api_errors_surface_at_add(program: type[Program]) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        prog = program([sys.executable, "-c", API_ERRORS, f"127.0.0.1:{port}"])
        assert prog.wait(30) == 0
    finally:
        busy.close()
    refusals = [line for line in prog.lines if line.startswith("refused:")]
    assert len(refusals) == 4, prog.output()
    assert "missing" in refusals[0]
    assert str(port) in refusals[1] or "in use" in refusals[1].lower()
    assert "not an address" in refusals[2]
    assert "workers: must be an int >= 1, not: 0" in refusals[3]


ADD_AFTER_RUN = """
import threading
import cotyledon
import cotyledon.wsgi


class Idle(cotyledon.Service):
    def __init__(self, worker_id):
        super().__init__(worker_id)
        self.stop = threading.Event()

    def run(self):
        print("idle running", flush=True)
        self.stop.wait()

    def terminate(self):
        self.stop.set()


manager = cotyledon.ServiceManager()
manager.add(Idle)


def too_late():
    try:
        cotyledon.wsgi.add(manager, "examples.wsgi.hello:app", bind="127.0.0.1:0")
    except RuntimeError as exc:
        print("refused:", exc, flush=True)


manager.register_hooks(on_reload=too_late)
manager.run()
"""


def test_api_add_after_run_is_refused_cleanly(program: type[Program]) -> None:
    prog = program([sys.executable, "-c", ADD_AFTER_RUN])
    prog.wait_line("idle running", 30)
    prog.signal(signal.SIGHUP)
    line = prog.wait_line(r"^refused: ", 30)
    assert "must be called before the manager runs" in line.string
    assert "Listening at" not in prog.output()
    assert stop(prog) == 0


def test_busy_status_port_is_named(program: type[Program]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        prog = start(
            program, "--status-port", str(port), "-b", "127.0.0.1:0", "examples.wsgi.hello:app"
        )
        assert prog.wait(30) == 1
    assert (
        f"Cannot start: cannot serve the status page on 127.0.0.1:{port} (--status-port): "
        "address already in use"
    ) in prog.output()
