"""The basic life of a manager, as real processes: start, titles, respawn, SIGTERM,
SIGINT, SIGHUP, with upstream's log lines byte for byte (pids masked)."""

from __future__ import annotations

import os
import signal

import pytest

from tests.functional._core import library_lines, master_pid
from tests.support.processes import children_of, proc_title, wait_for

pytestmark = pytest.mark.timeout(60)

SERVICES = {"Ticker(0)", "Ticker(1)", "printer(0)"}
MASTER = "cotyledon._service_manager"
WORKER = "cotyledon._service_worker"


def _start(program):  # type: ignore[no-untyped-def]
    prog = program.example("basic.py")
    pid = master_pid(prog)
    prog.workers = {}
    for _ in range(3):
        match = prog.wait_line(r"^(ticker|printer) (\d) running pid=(\d+)")
        prog.workers[f"{match.group(1)} {match.group(2)}"] = int(match.group(3))
    wait_for(lambda: len(children_of(pid)) == 3, what="3 workers")
    return prog, pid


def test_sigterm_graceful_shutdown_lines_and_exit_0(program) -> None:  # type: ignore[no-untyped-def]
    prog, _ = _start(program)
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    lines = library_lines(prog)
    starts = sorted(line for line in lines if "Run service" in line)
    assert starts == [
        "DEBUG:cotyledon._service_worker:Run service Ticker(0) [PID]",
        "DEBUG:cotyledon._service_worker:Run service Ticker(1) [PID]",
        "DEBUG:cotyledon._service_worker:Run service printer(0) [PID]",
    ]
    master = [line for line in lines if "_service_manager" in line]
    assert master == [
        f"INFO:{MASTER}:Caught SIGTERM signal, graceful exiting of master process",
        f"DEBUG:{MASTER}:Killing services with signal SIGTERM",
        f"DEBUG:{MASTER}:Waiting services to terminate",
        f"DEBUG:{MASTER}:Shutdown finish",
    ]
    graceful = "Caught SIGTERM signal, graceful exiting of service"
    workers = sorted(line for line in lines if graceful in line)
    assert workers == [f"INFO:{WORKER}:{graceful} {s} [PID]" for s in sorted(SERVICES)]
    assert len(lines) == 3 + 4 + 3  # nothing extra at DEBUG and above


def test_process_titles(program) -> None:  # type: ignore[no-untyped-def]
    prog, pid = _start(program)
    script = prog.argv[1]
    assert proc_title(pid) == f"basic.py: master process [{script}]"
    titles = sorted(proc_title(child) for child in children_of(pid))
    assert titles == [
        "basic.py: Ticker worker(0)",
        "basic.py: Ticker worker(1)",
        "basic.py: printer worker(0)",
    ]


def test_killed_worker_is_respawned_with_same_id_and_signal_name(program) -> None:  # type: ignore[no-untyped-def]
    prog, pid = _start(program)
    victim = prog.workers["ticker 0"]
    os.kill(victim, signal.SIGKILL)
    prog.wait_line(rf"^INFO:cotyledon._service_manager:Child {victim} killed by signal SIGKILL$")
    prog.wait_line(r"^ticker 0 running")
    wait_for(lambda: len(children_of(pid)) == 3, what="3 workers again")
    assert victim not in children_of(pid)
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0


def test_sigint_exits_1_at_once(program) -> None:  # type: ignore[no-untyped-def]
    prog, pid = _start(program)
    workers = children_of(pid)
    prog.signal(signal.SIGINT)
    assert prog.wait() == 1
    lines = library_lines(prog)
    assert "INFO:cotyledon._service_manager:Caught SIGINT signal, instantaneous exiting" in lines
    interrupted = [line for line in lines if "instantaneous exiting of service" in line]
    assert len(interrupted) == 3
    wait_for(lambda: not prog.descendants(), what="workers gone")
    assert all(p not in prog.descendants() for p in workers)


def test_sighup_default_reload_respawns_every_worker(program) -> None:  # type: ignore[no-untyped-def]
    prog, pid = _start(program)
    before = set(children_of(pid))
    prog.signal(signal.SIGHUP)
    for _ in range(3):
        prog.wait_line(r"^INFO:cotyledon._service_manager:Child \d+ exited with status 0$")
    wait_for(lambda: len(set(children_of(pid)) - before) == 3, what="3 new workers")
    assert len(children_of(pid)) == 3
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
