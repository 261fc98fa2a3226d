"""The WSGI master under faults: its status port out of fds, workers that crash.

Real server processes; the status port's fd shortage is made real with prlimit() on the
running master (its own fds plus two), and the idle clients that exhaust it are plain
TCP connections that never send a request.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.functional.test_wsgi_replacement import BREAKS_ON_RELOAD
from tests.functional.test_wsgi_status import fetch, ready_pids, start, status
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


def test_a_crashed_worker_is_logged_at_error_and_normal_stops_are_not(
    program: type[Program],
) -> None:
    prog, _, status_port = start(program, "-w", "2", "examples.wsgi.hello:app")
    victim = min(ready_pids(status_port, 2))
    os.kill(victim, signal.SIGSEGV)
    prog.wait_line(
        rf"ERROR cotyledon\.wsgi\.master: Worker \d \(pid {victim}\) killed by signal SIGSEGV$",
        20,
    )
    # The core's 2.x line is kept, text and level.
    prog.wait_line(
        rf"INFO cotyledon\._service_manager: Child {victim} killed by signal SIGSEGV$", 10
    )
    ready_pids(status_port, 2)
    prog.signal(signal.SIGHUP)  # the old workers stop on SIGTERM: normal, not logged
    prog.wait_line(r"Every wsgi worker was replaced", 30)
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    deaths = [
        line for line in prog.output().splitlines() if "cotyledon.wsgi.master: Worker" in line
    ]
    assert len(deaths) == 1, deaths


def test_an_aborted_reload_counts_no_restart_on_the_status_page(
    program: type[Program], tmp_path: Path
) -> None:
    (tmp_path / "fragile.py").write_text(BREAKS_ON_RELOAD)
    prog, _, status_port = start(
        program, "-w", "2", "--no-preload", "--pythonpath", str(tmp_path), "fragile:app"
    )
    old = ready_pids(status_port, 2)
    (tmp_path / "broken").touch()  # the new code raises at import
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Replacement of wsgi worker 0 aborted: the new worker exited", 30)
    prog.wait_line(r"Reload of wsgi ended without replacing every worker", 10)
    assert ready_pids(status_port, 2) == old
    data = status(status_port)
    assert data["restarts"] == {}
    assert [row["last_restart_reason"] for row in data["workers"]] == [None, None]
    _, _, metrics = fetch(status_port, "/metrics")
    restarts = [
        line
        for line in metrics.splitlines()
        if line.startswith("cotyledon_worker_restarts_total{")
    ]
    assert restarts
    assert all(line.endswith(" 0") for line in restarts), restarts
    aborted_at = prog.output().index("aborted: the new worker exited")
    assert "Every wsgi worker was replaced" not in prog.output()[aborted_at:]
    # Fixed code: the next reload counts its two restarts.
    (tmp_path / "broken").unlink()
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Every wsgi worker was replaced", 30)
    new = ready_pids(status_port, 2)
    assert not new & old
    data = status(status_port)
    assert data["restarts"] == {"reload": 2}
    assert [row["last_restart_reason"] for row in data["workers"]] == ["reload", "reload"]
