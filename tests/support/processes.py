"""Run real programs under test: output capture, conditions with deadlines, clean teardown.

One :class:`Program` owns one real process tree. It is started in its own session so that
teardown can find every descendant, and its output is read by a thread into a queue so that
tests wait for *lines*, never for time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

DEFAULT_TIMEOUT = 20.0


class ConditionTimeout(AssertionError):
    """A condition a test waited for did not come true before its deadline."""


def wait_for(
    predicate: Callable[[], object], timeout: float = DEFAULT_TIMEOUT, what: str = "condition"
) -> object:
    """Call ``predicate`` until it returns something truthy; return that value.

    Backs off from 1 ms to 50 ms between calls. Raises :class:`ConditionTimeout` naming
    ``what`` when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def is_zygote(pid: int) -> bool:
    """True for a cotyledon.wsgi zygote or a process it forked that is not a worker yet
    (the title ends with ": zygote"), and for a process that is exiting (no cmdline)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().rstrip(b"\0")
    except OSError:
        return False
    return not cmdline or cmdline.endswith(b": zygote")


def session_pids(sid: int) -> list[int]:
    """Every live (non-zombie) process whose session id is ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(b")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != b"Z":
            pids.append(int(entry))
    return pids


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads), from /proc."""
    result: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return result
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                result.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return result


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def proc_title(pid: int) -> str:
    """The process title as ``ps`` shows it (``/proc/<pid>/cmdline``)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


class Program:
    """A real program under test, started in a new session, with its output in a queue.

    stdout and stderr are merged. Every line is kept in :attr:`lines`; :meth:`wait_line`
    consumes lines in order from a cursor, so two waits for the same pattern find two lines.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
        )
        if env:
            full_env.update(env)
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or ROOT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cursor = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def example(cls, name: str, *args: str, **kwargs: object) -> Program:
        """Start ``examples/<name>`` with this interpreter."""
        return cls([sys.executable, str(EXAMPLES / name), *args], **kwargs)  # type: ignore[arg-type]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(raw.decode(errors="replace").rstrip("\n"))
        self._queue.put(None)

    def _drain_queue(self, timeout: float) -> bool:
        """Move lines from the queue to :attr:`lines`; False once the output has ended."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            self._queue.put(None)
            return False
        self.lines.append(line)
        return True

    def wait_line(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> re.Match[str]:
        """Wait for the next line (after the cursor) matching the regex ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.lines):
                line = self.lines[self._cursor]
                self._cursor += 1
                match = regex.search(line)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConditionTimeout(
                    f"timed out after {timeout}s waiting for /{pattern}/; output so far:\n"
                    + "\n".join(self.lines[-60:])
                )
            if not self._drain_queue(min(remaining, 0.2)) and self._cursor >= len(self.lines):
                raise ConditionTimeout(
                    f"output ended (exit {self.proc.poll()}) before /{pattern}/; output:\n"
                    + "\n".join(self.lines[-60:])
                )

    def output(self) -> str:
        """All output read so far (drains what is queued, without blocking)."""
        while self._drain_queue(0):
            if self._queue.empty():
                break
        return "\n".join(self.lines)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the main process to exit and its output to end; return the exit code."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        while self._drain_queue(0):
            if self._queue.empty():
                break
        return code

    def descendants(self) -> list[int]:
        """Every live process of this program's session except the main one."""
        return [p for p in session_pids(self.pid) if p != self.pid]

    def workers(self) -> list[int]:
        """:meth:`descendants` but a WSGI zygote (``--preload``: it forks the workers and
        serves nothing), the short-lived process it forks them through, and a worker it
        has just forked (titled as the zygote until it has started)."""
        return [p for p in self.descendants() if not is_zygote(p)]

    def kill_tree(self, timeout: float = 10.0) -> list[int]:
        """SIGTERM the session, wait with a deadline, SIGKILL what is left.

        Returns the pids that were still alive when the main process had already exited
        (those would be orphans).
        """
        leftovers: list[int] = []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        else:
            leftovers = session_pids(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            wait_for(lambda: not session_pids(self.pid), timeout=timeout, what="session gone")
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return leftovers


@contextlib.contextmanager
def running(program: Program) -> Iterator[Program]:
    """Context manager: yields ``program`` and tears it down, asserting no orphan was left."""
    try:
        yield program
    finally:
        orphans = program.kill_tree()
        assert not orphans, f"processes outlived their master: {orphans}\n{program.output()}"
