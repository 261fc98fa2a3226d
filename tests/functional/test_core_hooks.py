"""Hooks (order, failures) and worker exit statuses (SystemExit, exceptions)."""

from __future__ import annotations

import signal

import pytest

from tests.functional._core import library_lines, master_pid

pytestmark = pytest.mark.timeout(60)


def test_hooks_run_in_order_and_a_failing_hook_stops_its_kind(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("hooks.py")
    master_pid(prog)
    prog.wait_line(r"^hook on_new_worker worker=0 service=Hooked$")
    prog.wait_line(r"^run hello worker=0")
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^hook on_reload$")
    prog.wait_line(r"^ERROR:cotyledon._utils:Exception raised during reload hooks$")
    prog.wait_line(r"^hook on_dead_worker worker=0 exit_code=0$")
    prog.wait_line(r"^INFO:cotyledon._service_manager:Child \d+ exited with status 0$")
    prog.wait_line(r"^hook on_new_worker worker=0")
    prog.wait_line(r"^run hello worker=0")
    prog.signal(signal.SIGTERM)
    prog.wait_line(r"^hook on_terminate$")
    prog.wait_line(r"^DEBUG:cotyledon._service_manager:Killing services with signal SIGTERM$")
    prog.wait_line(r"^terminate worker=0$")
    assert prog.wait() == 0
    assert "hook never_called" not in prog.output()
    assert "ValueError: hook failed" in prog.output()


@pytest.mark.parametrize(("mode", "code"), [("run-exit", 5), ("run-raise", 2)])
def test_run_exit_status_becomes_the_worker_status(program, mode: str, code: int) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("hooks.py", mode, str(code))
    master_pid(prog)
    prog.wait_line(rf"^hook on_dead_worker worker=0 exit_code={code}$")
    prog.wait_line(rf"^INFO:cotyledon._service_manager:Child \d+ exited with status {code}$")
    prog.wait_line(r"^run hello worker=0")  # respawned
    if mode == "run-raise":
        assert "ERROR:cotyledon._utils:Unhandled exception" in library_lines(prog)
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0


@pytest.mark.parametrize(("mode", "code"), [("term-exit", 4), ("term-raise", 2), ("ok", 0)])
def test_terminate_outcome_becomes_the_worker_status(program, mode: str, code: int) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("hooks.py", mode, str(code))
    master_pid(prog)
    prog.wait_line(r"^run hello worker=0 pid=(\d+)")
    # reload() is the default one: SIGTERM to itself, so terminate() runs and the worker
    # exits with terminate's status while the master stays up to report it.
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^terminate worker=0$")
    prog.wait_line(rf"^hook on_dead_worker worker=0 exit_code={code}$")
    prog.wait_line(rf"^INFO:cotyledon._service_manager:Child \d+ exited with status {code}$")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
