"""An explicit spawn/forkserver mp_context is honoured: workers are started through it,
their deaths are noticed at once (process sentinels) and they are respawned (spec 7)."""

from __future__ import annotations

import os
import signal

import pytest

from tests.functional._core import master_pid
from tests.support.processes import pid_alive, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_context_workers_run_and_are_respawned(program, method: str) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("spawn_context.py", method)
    pid = master_pid(prog)
    workers = {}
    for _ in range(2):
        match = prog.wait_line(rf"^{method} (\d) running pid=(\d+) ppid=(\d+)$", timeout=60)
        workers[int(match.group(1))] = int(match.group(2))
        if method != "forkserver":
            assert int(match.group(3)) == pid
    assert prog.output().count("hook on_new_worker") == 2
    os.kill(workers[1], signal.SIGKILL)
    prog.wait_line(
        rf"^INFO:cotyledon._service_manager:Child {workers[1]} killed by signal SIGKILL$"
    )
    prog.wait_line(rf"^{method} 1 running pid=(\d+)", timeout=60)
    prog.signal(signal.SIGTERM)
    assert prog.wait(timeout=60) == 0
    assert "Parent process has died" not in prog.output()
    wait_for(lambda: not pid_alive(workers[0]), what="worker 0 gone")
    # multiprocessing's fork server leaves on its own once the master is gone
    wait_for(lambda: not prog.descendants(), what="every helper gone")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_context_workers_do_not_outlive_a_killed_master(program, method: str) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("spawn_context.py", method)
    pid = master_pid(prog)
    workers = [
        int(prog.wait_line(rf"^{method} \d running pid=(\d+)", timeout=60).group(1))
        for _ in range(2)
    ]
    os.kill(pid, signal.SIGKILL)
    for _ in range(2):
        prog.wait_line(r"^INFO:cotyledon._service_worker:Parent process has died unexpectedly")
    for worker in workers:
        wait_for(lambda w=worker: not pid_alive(w), what=f"worker {worker} gone")
    # multiprocessing's own helpers (fork server, resource tracker) follow on their own
    wait_for(lambda: not prog.descendants(), what="every helper gone")
