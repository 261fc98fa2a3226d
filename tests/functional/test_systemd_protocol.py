"""The systemd protocols between real processes, without the service manager:

* the fake PID 1 itself, checked against systemd's reference client ``systemd-notify``;
* the public :mod:`cotyledon.systemd` API from a separate program (sender pid, relaying);
* socket activation under the real ``systemd-socket-activate`` (LISTEN_PID, fd 3.., names).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import textwrap
from collections.abc import Iterator

import pytest

from tests.support.fake_notify import FakeNotifySocket
from tests.support.processes import Program

SYSTEMD_NOTIFY = shutil.which("systemd-notify")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.fixture(params=["path", "abstract"])
def pid1(request: pytest.FixtureRequest) -> Iterator[FakeNotifySocket]:
    with FakeNotifySocket(request.param) as server:
        yield server


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


@pytest.mark.skipif(SYSTEMD_NOTIFY is None, reason="systemd-notify is not installed")
@pytest.mark.timeout(60)
def test_fake_pid1_against_the_reference_client(
    pid1: FakeNotifySocket, program: type[Program]
) -> None:
    """systemd-notify --ready sends READY=1 then a BARRIER=1 with an fd it waits on: it only
    exits 0 quickly if our fake PID 1 closes that fd as systemd does."""
    assert SYSTEMD_NOTIFY is not None
    prog = program([SYSTEMD_NOTIFY, "--ready", "--status=reference client"], env=pid1.env())
    assert prog.wait(timeout=30) == 0, prog.output()
    ready = pid1.wait_key("READY", "1")
    assert ready.fields.get("STATUS") == "reference client"
    barrier = pid1.wait_key("BARRIER", "1")
    assert barrier.nfds == 1
    assert barrier.raw == b"BARRIER=1"
    # systemd-notify reports its parent's pid or its own: never a stranger's.
    assert ready.pid in (prog.pid, os.getpid())


@pytest.mark.timeout(60)
def test_public_notify_from_a_program(pid1: FakeNotifySocket, program: type[Program]) -> None:
    prog = program(
        python(
            """
            import os
            from cotyledon import systemd
            print("sent", systemd.notify(status="warming\\ncache", X_PHASE="2"), flush=True)
            print("pid", os.getpid(), flush=True)
            """
        ),
        env=pid1.env(),
    )
    assert prog.wait_line(r"^sent (\w+)").group(1) == "True"
    pid = int(prog.wait_line(r"^pid (\d+)").group(1))
    assert prog.wait() == 0
    message = pid1.wait_key("X_PHASE")
    assert message.raw == b"STATUS=warming cache\nX_PHASE=2"
    assert message.pid == pid


@pytest.mark.timeout(60)
def test_public_notify_without_systemd_is_a_quiet_no(program: type[Program]) -> None:
    env = dict.fromkeys(("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS"), "")
    prog = program(
        python(
            """
            from cotyledon import systemd
            print("sent", systemd.notify(status="x"), systemd.listen_sockets(), flush=True)
            """
        ),
        env=env,
    )
    assert prog.wait_line(r"^sent").group(0) == "sent"
    assert prog.wait() == 0
    assert prog.lines == ["sent False {}"]


ADOPT = """
import json, os, socket
from cotyledon import systemd
found = systemd.listen_sockets()
report = {
    name: [
        {"family": s.family.name, "type": s.type.name, "fd": s.fileno(),
         "inheritable": os.get_inheritable(s.fileno()), "addr": s.getsockname()}
        for s in socks
    ]
    for name, socks in found.items()
}
left = [k for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES") if k in os.environ]
print("adopted", json.dumps(report), json.dumps(left), flush=True)
print("again", json.dumps(sorted(systemd.listen_sockets())), flush=True)
sock = found["web"][0]
conn, _ = sock.accept()
conn.sendall(b"served by " + str(os.getpid()).encode() + b"\\n")
conn.close()
for socks in found.values():
    for s in socks:
        s.close()
"""


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
@pytest.mark.timeout(60)
def test_socket_activation_by_name(program: type[Program]) -> None:
    """systemd-socket-activate binds, waits for the first connection, then execs us with
    LISTEN_PID=<our pid>: the connection that triggered the start is served, not lost.
    Unix sockets in a short private directory: no port to pick."""
    assert SOCKET_ACTIVATE is not None
    tmp = tempfile.mkdtemp(prefix="cta-", dir="/tmp")
    try:
        paths = [os.path.join(tmp, "web.sock"), os.path.join(tmp, "admin.sock")]
        prog = program(
            [
                SOCKET_ACTIVATE,
                f"--listen={paths[0]}",
                f"--listen={paths[1]}",
                "--fdname=web:admin",
                *python(ADOPT),
            ]
        )
        prog.wait_line(re.escape(f"Listening on {paths[1]}"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(20)
            client.connect(paths[0])
            line = prog.wait_line(r"^adopted (.*) (\[.*\])$")
            report, left = json.loads(line.group(1)), json.loads(line.group(2))
            assert prog.wait_line(r"^again (.*)$").group(1) == '["admin", "web"]'
            with client.makefile("rb") as reader:
                reply = reader.readline()
        assert prog.wait() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert reply == f"served by {prog.pid}\n".encode()
    assert left == []
    assert sorted(report) == ["admin", "web"]
    web, admin = report["web"][0], report["admin"][0]
    assert (web["fd"], admin["fd"]) == (3, 4)
    assert (web["family"], web["type"]) == ("AF_UNIX", "SOCK_STREAM")
    assert (web["addr"], admin["addr"]) == (paths[0], paths[1])
    assert not web["inheritable"]
    assert not admin["inheritable"]


@pytest.mark.timeout(60)
def test_listen_fds_meant_for_another_process(program: type[Program]) -> None:
    """A LISTEN_PID that is not ours (e.g. inherited from a parent) is ignored and unset."""
    prog = program(
        python(
            """
            import os
            from cotyledon import systemd
            print("found", systemd.listen_fds(), sorted(k for k in os.environ
                  if k.startswith("LISTEN_")), flush=True)
            """
        ),
        env={"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"},
    )
    assert prog.wait() == 0
    assert prog.lines == ["found [] []"]


@pytest.mark.timeout(60)
def test_listen_fds_claiming_more_than_passed(program: type[Program]) -> None:
    """LISTEN_FDS larger than what was really passed: a clear error, not a crash later."""
    prog = program(
        [
            "sh",
            "-c",
            'LISTEN_PID=$$ LISTEN_FDS=3 exec "$0" -c "$1"',
            sys.executable,
            (
                "from cotyledon import systemd\n"
                "try:\n"
                "    systemd.listen_fds()\n"
                "except systemd.ListenFdsError as exc:\n"
                "    print('error', exc, flush=True)\n"
            ),
        ],
    )
    assert prog.wait() == 0
    assert prog.lines == ["error LISTEN_FDS=3 but fd 3 is not open"]
