"""Process primitives of the master: fork, reap our own children, decode wait statuses,
send signals to pids we own.

Job: the system calls around child processes, each small and named. Reaping only ever
waits on pids we forked (``waitpid(pid, WNOHANG)``), never ``waitpid(-1)``: a child the
application started itself (``subprocess``) stays the application's to reap.

Must not: decide when to fork or kill (the supervisor does), or log.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc: Any = None


def exit_code(status: int) -> int:
    """A ``waitpid`` status as multiprocessing's ``exitcode``: the exit status, or minus
    the number of the signal that killed the process."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def reap(pids: Iterable[int]) -> list[tuple[int, int]]:
    """Reap whichever of ``pids`` have exited; ``[(pid, exit_code), ...]``. Never blocks."""
    dead = []
    for pid in pids:
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped by someone else (a program calling os.wait()): report it as lost.
            dead.append((pid, 255))
            continue
        if waited == pid:
            dead.append((pid, exit_code(status)))
    return dead


def reap_blocking(pids: Iterable[int]) -> None:
    """Wait for ``pids`` (already SIGKILLed) so they do not linger as zombies."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def send_signal(pids: Iterable[int], signum: int) -> None:
    """Signal each of our children; one that is already gone is skipped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def set_pdeathsig(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent thread dies."""
    try:
        return bool(libc().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def set_child_subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (Linux >= 3.4): a worker
    started by a helper process that exits becomes our child.

    :raises OSError: not supported here.
    """
    import ctypes  # noqa: PLC0415 - libc() imported it already

    if libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"cannot become a child subreaper: {os.strerror(errno)}")


def libc() -> Any:
    """The C library through ctypes, loaded once. ``import cotyledon`` does not pay for
    ctypes: the master loads it before its first fork, so forked workers inherit it.

    :raises OSError: it cannot be loaded.
    """
    global _libc
    if _libc is None:
        import ctypes  # noqa: PLC0415 - see above

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def signal_name(signum: int) -> str:
    """``9`` -> ``"SIGKILL"`` (real signals only: aliases resolve to the canonical name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
