"""Regression tests for upstream bugs of spec/api.md section 6 not covered elsewhere:
6.1 (a signal sent to a just-forked child reaching the master) and 6.12 (killpg hitting
processes that are not our workers). 6.2-6.4: test_core_reconfigure; 6.5:
test_core_shutdown; 6.6: test_core_basic; 6.8: test_core_faults; 6.10: test_core_spawn;
6.15: test_core_seatbelt; 6.9: the systemd tests."""

from __future__ import annotations

import os
import signal

import pytest

from tests.functional._core import master_pid
from tests.support.processes import children_of, pid_alive, wait_for

pytestmark = pytest.mark.timeout(60)


def test_sigterm_to_just_forked_children_never_reaches_the_master(program) -> None:  # type: ignore[no-untyped-def]
    """6.1: the on_reload hook raises the workers to 6 then back to 2: the master SIGTERMs
    4 children microseconds after forking them, many times over."""
    prog = program.example("reconfigure.py", "flap")
    pid = master_pid(prog)
    for _ in range(2):
        prog.wait_line(r"^steady \d running")
    for _ in range(20):
        prog.signal(signal.SIGHUP)
        prog.wait_line(r"^reconfigured flap$")
    wait_for(lambda: len(children_of(pid)) == 2, what="back to 2 workers")
    assert "graceful exiting of master process" not in prog.output()
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    assert prog.output().count("graceful exiting of master process") == 1


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_master_signals_only_its_workers_not_its_process_group(program, signum: int) -> None:  # type: ignore[no-untyped-def]
    """6.12: upstream forwarded SIGHUP/SIGINT with killpg(0): a pipeline partner in the
    same group (``app | cat``) died. Ours signals its own children only, and does not
    reap a child the application started itself."""
    prog = program.example("basic.py", env={"NEIGHBOUR": "1"})
    neighbour = int(prog.wait_line(r"^neighbour pid=(\d+)$").group(1))
    pid = master_pid(prog)
    for _ in range(3):
        prog.wait_line(r"^(ticker|printer) \d running")
    assert os.getpgid(neighbour) == os.getpgid(pid)
    prog.signal(signum)
    if signum == signal.SIGHUP:
        for _ in range(3):
            prog.wait_line(r"exited with status 0$")
        wait_for(lambda: len(children_of(pid)) == 4, what="3 workers + the neighbour")
        assert pid_alive(neighbour)
        assert neighbour in children_of(pid)
        prog.signal(signal.SIGTERM)
        assert prog.wait() == 0
    else:
        assert prog.wait() == 1
    assert pid_alive(neighbour)
    os.kill(neighbour, signal.SIGKILL)
    wait_for(lambda: not pid_alive(neighbour), what="neighbour gone")
