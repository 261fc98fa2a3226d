"""Faults: a crash loop beside a healthy service, the give-up policy, signal bursts,
mass worker death, fork failing for lack of processes (injected, and a real kernel limit),
and an idle master that sleeps."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional._core import ctxt_switches, library_lines, master_pid
from tests.support.processes import EXAMPLES, children_of, wait_for

MASTER = "cotyledon._service_manager"


@pytest.mark.timeout(90)
def test_crash_loop_is_backed_off_while_the_healthy_service_keeps_serving(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("crashloop.py")
    pid = master_pid(prog)
    healthy = int(prog.wait_line(r"^healthy running pid=(\d+)").group(1))
    prog.wait_line(rf"^INFO:{MASTER}:Forking too fast, sleeping$")
    # During the crash-looper's pause, the master still serves: SIGHUP reaches the
    # healthy worker (reloads in place) at once.
    prog.signal(signal.SIGHUP)
    prog.wait_line(rf"^healthy reloaded pid={healthy}$")
    crashes_before = prog.output().count("crasher started")
    prog.wait_line(rf"^INFO:{MASTER}:Forking too fast, sleeping$", timeout=30)
    assert healthy in children_of(pid)
    # Throttled, not a hot loop: a few restarts per pause, never hundreds.
    assert prog.output().count("crasher started") - crashes_before <= 4
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    statuses = re.findall(r"Child \d+ exited with status (\d+)", prog.output())
    assert set(statuses) == {"7"}


@pytest.mark.timeout(60)
def test_give_up_policy_stops_the_manager_with_status_3(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("crashloop.py", "--give-up", "2", "60")
    master_pid(prog)
    assert prog.wait(timeout=40) == 3
    lines = library_lines(prog)
    assert (
        f"ERROR:{MASTER}:Service crasher restarted more than 2 times in 60.0 s, giving up: "
        "stopping the manager"
    ) in lines
    assert lines[-1] == f"DEBUG:{MASTER}:Shutdown finish"
    assert prog.output().count("crasher started") == 3


@pytest.mark.timeout(60)
def test_bursts_of_hundreds_of_signals(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("reconfigure.py", "up")
    pid = master_pid(prog)
    for _ in range(2):
        prog.wait_line(r"^steady \d running")
    for _ in range(300):
        os.kill(pid, signal.SIGHUP)
        os.kill(pid, signal.SIGCHLD)
    prog.wait_line(r"^reconfigured up$")
    wait_for(lambda: len(children_of(pid)) == 4, what="4 workers")
    os.kill(pid, signal.SIGHUP)
    prog.wait_line(r"^reconfigured up$")
    assert len(children_of(pid)) == 4
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    assert prog.output().count("running pid=") == 4  # reload in place: no respawn at all


@pytest.mark.timeout(120)
def test_fifty_workers_killed_at_once_are_all_respawned(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("many.py", "50", env={"LOG_LEVEL": "20"})
    pid = master_pid(prog)
    for _ in range(50):
        prog.wait_line(r"^idle \d+ running", timeout=60)
    first = set(children_of(pid))
    assert len(first) == 50
    for child in first:
        os.kill(child, signal.SIGKILL)
    for _ in range(50):
        prog.wait_line(r"^idle \d+ running", timeout=60)
    wait_for(lambda: len(children_of(pid)) == 50, timeout=60, what="50 workers")
    assert not first & set(children_of(pid))
    out = prog.output()
    assert out.count("killed by signal SIGKILL") == 50
    assert "Forking too fast" not in out
    ids = sorted(int(m) for m in re.findall(r"^idle (\d+) running", out, re.M))
    assert ids == sorted(list(range(50)) * 2)
    prog.signal(signal.SIGTERM)
    assert prog.wait(timeout=60) == 0


FAILING_FORK = """
import errno, os, runpy, sys
real_fork, failures = os.fork, [0]
def fork():
    if failures[0] < 4:
        failures[0] += 1
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    return real_fork()
os.fork = fork
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.timeout(60)
def test_fork_failing_is_retried_with_backoff_and_logged(program) -> None:  # type: ignore[no-untyped-def]
    """os.fork() raising EAGAIN (as under RLIMIT_NPROC): the master logs each failure
    with a growing retry delay (no silent exit, no hot loop), then starts the workers."""
    prog = program([sys.executable, "-c", FAILING_FORK, str(EXAMPLES / "many.py"), "2"])
    master_pid(prog)
    delays = [
        float(
            prog.wait_line(
                rf"^ERROR:{MASTER}:Cannot start worker \d of service idle: "
                r"\[Errno 11\] Resource temporarily unavailable; retrying in ([\d.]+) s$"
            ).group(1)
        )
        for _ in range(4)
    ]
    assert delays == sorted(delays)
    assert delays[0] < delays[-1]
    for _ in range(2):
        prog.wait_line(r"^idle \d running")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    assert prog.output().count("Cannot start worker") == 4


def _pids_cgroup_root() -> Path | None:
    """A writable pids controller (cgroup v1, or v2 with pids enabled), or None."""
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    control = v2 / "cgroup.subtree_control"
    candidates = [v1]
    if control.exists() and "pids" in control.read_text().split():
        candidates.append(v2)
    for root in candidates:
        if (root / "cgroup.procs").exists() and os.access(root, os.W_OK):
            return root
    return None


@pytest.fixture
def pids_cgroup() -> Iterator[Path]:
    """A fresh pids cgroup (what systemd's TasksMax= uses), removed afterwards."""
    root = _pids_cgroup_root()
    if root is None:
        pytest.skip("needs a writable pids cgroup controller (root, /sys/fs/cgroup)")
    group = root / f"cotyledon-test-{os.getpid()}-{time.monotonic_ns()}"
    group.mkdir()
    try:
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # none once the test passed
            with contextlib.suppress(OSError):
                (root / "cgroup.procs").write_text(pid)
        group.rmdir()


# Join the cgroup, then exec the example: the master's first fork is already limited.
IN_CGROUP = """
import os, sys
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


@pytest.mark.timeout(60)
def test_real_process_limit_is_retried_until_it_is_raised(program, pids_cgroup) -> None:  # type: ignore[no-untyped-def]
    """A real kernel limit on processes (pids.max, systemd's TasksMax; root ignores
    RLIMIT_NPROC): the master may own nothing but itself, so every fork fails with EAGAIN
    and is retried with a logged, growing backoff - no exit, no hot loop. Raising the limit
    lets the workers start."""
    (pids_cgroup / "pids.max").write_text("1")  # the master alone
    procs = str(pids_cgroup / "cgroup.procs")
    prog = program([sys.executable, "-c", IN_CGROUP, procs, str(EXAMPLES / "many.py"), "3"])
    pid = master_pid(prog)
    for _ in range(3):  # retried, each time with a delay
        prog.wait_line(
            rf"^ERROR:{MASTER}:Cannot start worker \d of service idle: "
            r"\[Errno 11\] Resource temporarily unavailable; retrying in [\d.]+ s$"
        )
    assert not children_of(pid)
    (pids_cgroup / "pids.max").write_text("max")
    wait_for(lambda: len(children_of(pid)) == 3, timeout=30, what="the workers")
    for _ in range(3):
        prog.wait_line(r"^idle \d running")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0


@pytest.mark.timeout(60)
def test_idle_master_does_not_wake_up(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("many.py", "4", env={"TICK": "1", "LOG_LEVEL": "20"})
    pid = master_pid(prog)
    for _ in range(4):
        prog.wait_line(r"^idle \d running")
    prog.wait_line(r"^tick 2$")
    before = ctxt_switches(pid)
    prog.wait_line(r"^tick 12$")  # about a second of worker activity
    after = ctxt_switches(pid)
    assert after - before <= 1
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
