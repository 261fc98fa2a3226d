"""The WSGI master under faults: its status port out of fds, workers that crash.

Real server processes; the status port's fd shortage is made real with prlimit() on the
running master (its own fds plus two), and the idle clients that exhaust it are plain
TCP connections that never send a request.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from contextlib import ExitStack

import pytest

from tests.functional.test_wsgi_status import fetch, ready_pids, start
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

EMFILE_WARNING = r"WARNING cotyledon\.wsgi\.status: Status page: accept\(\) failed"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_status_port_out_of_fds_rests_warns_once_and_recovers(program: type[Program]) -> None:
    prog, _, status_port = start(program, "-w", "1", "examples.wsgi.hello:app")
    ready_pids(status_port, 1)
    master = prog.proc.pid
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Room for two status connections: the third client's accept() gets EMFILE.
    resource.prlimit(
        master, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{master}/fd")) + 2, hard)
    )
    with ExitStack() as clients:
        for _ in range(12):  # idle: they never send a request
            clients.enter_context(socket.create_connection(("127.0.0.1", status_port)))
        prog.wait_line(EMFILE_WARNING, 20)
        # The pending clients keep the listener readable: the master must rest, not spin.
        window = 2.0
        before, started = cpu_seconds(master), time.monotonic()
        wait_for(lambda: time.monotonic() - started >= window, window + 5, "the window")
        used = cpu_seconds(master) - before
        assert used < window / 4, f"the master used {used:.2f}s of CPU in {window}s"
    wait_for(lambda: fetch(status_port, "/json")[0] == 200, 30, "/json answering again")
    output = prog.output()
    assert len([line for line in output.splitlines() if "accept() failed" in line]) == 1
    assert "Traceback" not in output
    assert "failed in on_ready" not in output
