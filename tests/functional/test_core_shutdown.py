"""Shutdown paths: bounded graceful timeout (spec 6.5), shutdown() from a hook and from a
thread (and again after run() ended), SIGTERM during start-up (upstream #23)."""

from __future__ import annotations

import signal

import pytest

from tests.functional._core import library_lines, master_pid
from tests.support.processes import children_of, pid_alive, wait_for

pytestmark = pytest.mark.timeout(60)
MASTER = "cotyledon._service_manager"


def test_graceful_timeout_kills_a_hanging_worker_and_exits_1(program) -> None:  # type: ignore[no-untyped-def]
    """spec/api.md 6.5: service timeout 0 + hanging terminate(); manager timeout 2 s."""
    prog = program.example("timeout.py")
    pid = master_pid(prog)
    worker = int(prog.wait_line(r"^stubborn running pid=(\d+)").group(1))
    assert children_of(pid) == [worker]
    prog.signal(signal.SIGTERM)
    prog.wait_line(r"^stubborn ignores terminate$")
    assert prog.wait(timeout=30) == 1
    assert not pid_alive(worker)
    lines = library_lines(prog)
    timed_out = "Graceful shutdown timeout exceeded, instantaneous exiting of master process"
    assert lines[-1] == f"INFO:{MASTER}:{timed_out}"
    assert f"DEBUG:{MASTER}:Shutdown finish" not in lines


def test_shutdown_from_on_dead_worker_hook(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("shutdown.py", "hook")
    master_pid(prog)
    prog.wait_line(r"^oneshot done")
    prog.wait_line(rf"^INFO:{MASTER}:Manager shutdown requested$")
    prog.wait_line(rf"^INFO:{MASTER}:Caught SIGTERM signal, graceful exiting of master process$")
    prog.wait_line(r"^run\(\) ended with SystemExit\(0\)$")
    prog.wait_line(r"^second shutdown returned$")
    assert prog.wait() == 0


def test_shutdown_from_a_thread_then_again_after_run(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("shutdown.py", "thread")
    master_pid(prog)
    prog.wait_line(r"^waiter running")
    prog.wait_line(rf"^DEBUG:{MASTER}:Shutdown finish$")
    prog.wait_line(r"^run\(\) ended with SystemExit\(0\)$")
    prog.wait_line(rf"^INFO:{MASTER}:Manager shutdown requested$")
    prog.wait_line(r"^second shutdown returned$")
    assert prog.wait() == 0


def test_sigterm_during_startup_stops_cleanly(program) -> None:  # type: ignore[no-untyped-def]
    """Upstream #23: SIGTERM while workers are still being built must not leave a stuck
    master or live children."""
    prog = program.example("slow_start.py")
    pid = master_pid(prog)
    prog.wait_line(r"^building pid=")
    prog.signal(signal.SIGTERM)
    assert prog.wait(timeout=30) == 0
    out = prog.output()
    assert out.count("slow terminating") == 2
    assert not children_of(pid)


def test_sigterm_storm_while_workers_start(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("many.py", "8", env={"LOG_LEVEL": "20"})
    master_pid(prog)
    prog.wait_line(r"^idle \d running")  # the master's handlers are installed by now
    for _ in range(200):
        prog.signal(signal.SIGTERM)
    assert prog.wait(timeout=30) == 0
    wait_for(lambda: not prog.descendants(), what="no worker left")
