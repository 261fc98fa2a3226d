"""Socket activation of the cotyledon-wsgi command, as systemd does it.

Two launchers: a tiny shim that puts a socket the test bound on fd 3 and sets
``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES`` before exec-ing the server (what PID 1
does, spec/systemd.md 1.8), and Debian's ``systemd-socket-activate`` where installed.
No ``--bind``: the server must serve on the activated socket, not on 127.0.0.1:8000.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program

pytestmark = pytest.mark.timeout(90)

LISTENING = r"Listening at (\S+) \((\d+) workers?, (\d+) threads?\)"
SERVER = [sys.executable, "-m", "cotyledon.wsgi", "-w", "2", "examples.wsgi.hello:app"]

# fd N -> fd 3, LISTEN_* for the pid that exec keeps, then exec the server.
SHIM = """
import os, sys
fd, name, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=name)
os.execv(argv[0], argv)
"""


def activate(program: type[Program], sock: socket.socket, name: str, *server_args: str) -> Program:
    fd = sock.fileno()
    return program(
        [sys.executable, "-c", SHIM, str(fd), name, *SERVER[:-1], *server_args, SERVER[-1]],
        pass_fds=[fd],
    )


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_activated_socket_is_the_default_bind(program: type[Program]) -> None:
    with _listening_socket() as sock:
        port = sock.getsockname()[1]
        prog = activate(program, sock, "web")
        url = prog.wait_line(LISTENING, 30).group(1)
    assert url == f"http://127.0.0.1:{port}"
    with RawClient(("127.0.0.1", port)) as client:
        assert client.get("/").status == 200
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0


def test_activated_socket_by_name(program: type[Program]) -> None:
    with _listening_socket() as sock:
        port = sock.getsockname()[1]
        prog = activate(program, sock, "web", "-b", "systemd:web")
        prog.wait_line(LISTENING, 30)
    with RawClient(("127.0.0.1", port)) as client:
        assert client.get("/").status == 200
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0


def test_missing_name_stops_start_up_with_the_names_passed(program: type[Program]) -> None:
    with _listening_socket() as sock:
        prog = activate(program, sock, "web", "-b", "systemd:admin")
        assert prog.wait(30) != 0
    log = prog.output()
    assert "systemd:admin" in log
    assert "no socket named 'admin'" in log
    assert "names passed: web" in log


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="systemd-socket-activate not installed (Debian package systemd)",
)
def test_systemd_socket_activate_on_a_unix_socket(program: type[Program], tmp_path: Path) -> None:
    """The launcher holds the socket and execs us on the first connection: that first
    connection waits in the backlog and must be answered."""
    path = tmp_path / "web.sock"
    prog = program(
        ["systemd-socket-activate", "-l", str(path), "--fdname=web", *SERVER],
    )
    prog.wait_line(re.escape(f"Listening on {path} as 3."), 30)
    with RawClient(str(path)) as client:
        assert client.get("/").status == 200
        match = prog.wait_line(LISTENING, 30)
    assert match.group(1) == f"unix:{path}"
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
