"""SIGTTIN / SIGTTOU change the number of workers; SIGUSR1 reopens every log file."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.functional.wsgi_helpers import RawClient, wsgi_command
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)
HELLO = "examples.wsgi.hello:app"


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def count_workers(prog: Program, count: int) -> set[int]:
    pids = wait_for(lambda: len(prog.workers()) == count and set(prog.workers()), 30)
    assert isinstance(pids, set)
    return pids


def test_sigttin_adds_a_worker_and_sigttou_removes_one(program: type[Program]) -> None:
    prog = program(wsgi_command("-w", "2", HELLO))
    prog.wait_line(r"Listening at ", 30)
    two = count_workers(prog, 2)
    prog.signal(signal.SIGTTIN)
    prog.wait_line(r"Going from 2 to 3 workers", 10)
    three = count_workers(prog, 3)
    assert two < three
    for expected in (2, 1):
        prog.signal(signal.SIGTTOU)
        prog.wait_line(rf"Going from {expected + 1} to {expected} workers?\b", 10)
        count_workers(prog, expected)
    prog.signal(signal.SIGTTOU)  # never below one
    prog.wait_line(r"Staying at 1 worker \(between 1 and \d+\)", 10)
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0


def test_sigusr1_reopens_the_access_log_and_the_error_log(
    program: type[Program], tmp_path: Path
) -> None:
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    log_options = ("--access-log-file", str(access), "--error-log-file", str(errors))
    prog = program(wsgi_command("-w", "2", *log_options, HELLO))
    text = wait_for(
        lambda: errors.exists() and "Listening at" in errors.read_text() and errors.read_text(), 30
    )
    assert isinstance(text, str)
    port = int(text.split("Listening at http://127.0.0.1:")[1].split(" ")[0])
    count_workers(prog, 2)
    with RawClient(("127.0.0.1", port)) as client:
        assert client.get("/before").status == 200
    wait_for(lambda: "GET /before" in access.read_text(), 10)
    # logrotate: rename both, then SIGUSR1 to the master.
    access.rename(tmp_path / "access.log.1")
    errors.rename(tmp_path / "error.log.1")
    prog.signal(signal.SIGUSR1)
    wait_for(lambda: errors.exists() and "log file(s) reopened" in errors.read_text(), 10)

    def logged_after() -> bool:
        with RawClient(("127.0.0.1", port)) as client:  # both workers must have reopened
            assert client.get("/after", "Connection: close\r\n").status == 200
        return access.exists() and "GET /after" in access.read_text()

    wait_for(logged_after, 10, "a line in the new access log")
    rotated = tmp_path / "access.log.1"

    def every_worker_reopened() -> bool:
        # The master logs "reopened" before it signals the workers: a worker may still
        # write one line to the old file. Once several requests leave it as it is, every
        # worker writes to the new one.
        size = rotated.stat().st_size
        for _ in range(6):
            logged_after()
        return rotated.stat().st_size == size

    wait_for(every_worker_reopened, 10, "every worker writing to the new access log")
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    assert "Shutdown" in errors.read_text() or "exiting" in errors.read_text()
