"""reload="replace" with real processes and real signals (examples/replace_on_reload.py)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(60)
RUNNING = r"queue (\d) running pid=(\d+)"


def running(prog: Program, count: int) -> dict[int, int]:
    slots: dict[int, int] = {}
    for _ in range(count):
        match = prog.wait_line(RUNNING, 30)
        slots[int(match.group(1))] = int(match.group(2))
    return slots


def test_each_new_worker_runs_before_its_old_one_stops(program: type[Program]) -> None:
    prog = program.example("replace_on_reload.py")
    old = running(prog, 3)
    prog.signal(signal.SIGHUP)
    new = running(prog, 3)
    assert set(new) == {0, 1, 2}
    assert not set(new.values()) & set(old.values())
    wait_for(lambda: set(prog.descendants()) == set(new.values()), 30, "old workers gone")
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    lines = prog.output().splitlines()
    # The new worker was built (and reported it) before its old one was told to stop.
    for slot, pid in new.items():
        ready = lines.index(f"queue {slot} ready pid={pid}")
        stopping = lines.index(f"queue {slot} terminating pid={old[slot]}")
        assert ready < stopping, lines

    # One slot at a time (max_surge=1): slot N+1 starts after slot N's new worker is up.
    def at(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    for slot in (0, 1):
        assert at(f"queue worker {slot} replaced:") < at(f"Replacing queue worker {slot + 1} ")


def test_a_replacement_that_fails_keeps_the_old_workers(
    program: type[Program], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    prog = program.example("replace_on_reload.py", env={"BROKEN_ON_RELOAD": str(broken)})
    old = running(prog, 3)
    broken.touch()
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Replacement of queue worker 0 aborted: the new worker exited", 30)
    assert set(prog.descendants()) == set(old.values())
    assert "terminating" not in prog.output()
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
