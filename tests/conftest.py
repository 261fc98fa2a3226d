"""Suite-wide fixtures: pytest is a child subreaper, so any process a test leaks comes back
to it and is caught and reaped here."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.support.processes import Program, running, session_pids

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


SUBREAPER = _become_subreaper()


def _reap_adopted() -> list[int]:
    """Reap zombies adopted by this (subreaper) process; return their pids."""
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def _live_children() -> list[int]:
    me = os.getpid()
    out = []
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{tid}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


@pytest.fixture(autouse=True)
def no_orphans(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves any process behind (adopted orphans included)."""
    before = set(_live_children())
    yield
    deadline = time.monotonic() + 10
    while True:
        _reap_adopted()
        left = [p for p in _live_children() if p not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap_adopted()
    assert not left, f"{request.node.nodeid} left processes behind: {left}"


@pytest.fixture
def program() -> Iterator[type[Program]]:
    """Factory fixture: ``program.example("name.py", ...)``; every program started through it
    is torn down at the end of the test, and none may leave an orphan."""
    started: list[Program] = []

    class Tracked(Program):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    errors = []
    for prog in started:
        try:
            with running(prog):
                pass
        except AssertionError as exc:
            errors.append(str(exc))
        if session_pids(prog.pid):
            errors.append(f"session {prog.pid} still alive")
    assert not errors, "\n".join(errors)
