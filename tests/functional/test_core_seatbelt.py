"""Workers never outlive their master: SIGKILL the master, the worker (and the process its
service forked) go away; PR_SET_PDEATHSIG is armed as a backstop."""

from __future__ import annotations

import os
import signal

import pytest

from tests.functional._core import master_pid
from tests.support.processes import pid_alive, wait_for

pytestmark = pytest.mark.timeout(60)
WORKER = "cotyledon._service_worker"


def test_pdeathsig_backstop_is_armed(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("seatbelt.py")
    master_pid(prog)
    assert int(prog.wait_line(r"^pdeathsig=(\d+)$").group(1)) == signal.SIGTERM
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0


def test_sigkilled_master_worker_and_grandchild_exit(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("seatbelt.py")
    pid = master_pid(prog)
    match = prog.wait_line(r"^worker pid=(\d+) grandchild pid=(\d+)$")
    worker, grandchild = int(match.group(1)), int(match.group(2))
    os.kill(pid, signal.SIGKILL)
    prog.wait_line(
        rf"^INFO:{WORKER}:Parent process has died unexpectedly, forker\(0\) \[{worker}\] exiting$"
    )
    prog.wait_line(
        rf"^INFO:{WORKER}:Caught SIGTERM signal, graceful exiting of service forker\(0\) "
        rf"\[{worker}\]$"
    )
    prog.wait_line(rf"^worker terminating pid={worker}$")
    wait_for(lambda: not pid_alive(worker), what="worker gone")
    wait_for(lambda: not pid_alive(grandchild), what="grandchild gone")
    out = prog.output()
    assert out.count("Parent process has died unexpectedly") == 1
    assert out.count("Caught SIGTERM signal, graceful exiting of service") == 1


def test_orphan_with_hanging_terminate_is_still_bounded(program) -> None:  # type: ignore[no-untyped-def]
    """Upstream hole: service timeout 0 + a hanging terminate() lived forever once the
    master was gone. The manager's timeout (2 s) bounds it."""
    prog = program.example("seatbelt.py", "hang")
    pid = master_pid(prog)
    worker = int(prog.wait_line(r"^worker pid=(\d+)").group(1))
    os.kill(pid, signal.SIGKILL)
    prog.wait_line(rf"^worker terminating pid={worker}$")
    prog.wait_line(
        rf"^INFO:{WORKER}:Graceful shutdown timeout \(2\) exceeded, exiting forker\(0\) "
        rf"\[{worker}\] now\.$"
    )
    wait_for(lambda: not pid_alive(worker), what="worker gone")


def _pipe_ends(pid: int) -> set[tuple[str, str]]:
    """``{(pipe inode, "r" or "w")}`` for every pipe fd of ``pid``."""
    ends = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags"))
        except (OSError, StopIteration):
            continue
        if target.startswith("pipe:"):
            ends.add((target, "w" if flags & os.O_ACCMODE == os.O_WRONLY else "r"))
    return ends


def test_only_the_master_holds_the_seatbelt_write_end(program) -> None:  # type: ignore[no-untyped-def]
    """The worker closes its copy of the write end first thing, so a process its service
    forks can never keep a dead master's pipe open."""
    prog = program.example("seatbelt.py")
    pid = master_pid(prog)
    match = prog.wait_line(r"^worker pid=(\d+) grandchild pid=(\d+)$")
    worker, grandchild = int(match.group(1)), int(match.group(2))
    master_writes = {inode for inode, mode in _pipe_ends(pid) if mode == "w"}
    worker_reads = {inode for inode, mode in _pipe_ends(worker) if mode == "r"}
    seatbelt = master_writes & worker_reads
    assert seatbelt, "the worker watches a pipe the master writes"
    for other in (worker, grandchild):
        assert not seatbelt & {inode for inode, mode in _pipe_ends(other) if mode == "w"}
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
