"""Helpers of the core functional tests: start an example, mask pids, read /proc."""

from __future__ import annotations

import re

from tests.support.processes import Program

_PIDS = [(re.compile(r"\[\d+\]"), "[PID]"), (re.compile(r"Child \d+"), "Child PID")]
LIB_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):cotyledon\.")


def mask(line: str) -> str:
    """Upstream's ``hide_pids``: pids in compat log lines become ``PID``."""
    for regex, replacement in _PIDS:
        line = regex.sub(replacement, line)
    return line


def library_lines(prog: Program) -> list[str]:
    """The cotyledon log lines the program printed (DEBUG and above), pids masked."""
    return [mask(line) for line in prog.output().splitlines() if LIB_LINE.match(line)]


def master_pid(prog: Program) -> int:
    return int(prog.wait_line(r"master pid=(\d+)").group(1))


def ctxt_switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` (a count of wake-ups)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches for {pid}")
