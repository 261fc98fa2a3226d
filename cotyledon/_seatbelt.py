"""Worker-side parent-death detection: workers never outlive their master.

Job: the two ways a worker learns that its master is gone.

* The pipe: the master creates it before forking and keeps the only write end; each
  worker closes its inherited copy of the write end first thing after fork (so a process
  the service forks later cannot keep a dead master's pipe open) and watches the read end
  in its event loop: EOF means the master died.
* The backstop: ``PR_SET_PDEATHSIG(SIGTERM)`` set right after fork, then ``getppid()``
  re-checked (the master may have died before the prctl).

Must not: decide what the worker does about it (the worker driver does), or log.
"""

from __future__ import annotations

import contextlib
import os
import signal

from cotyledon import _processes

#: The signal the kernel sends a worker whose master died (handled as "parent died").
PDEATHSIG = signal.SIGTERM


class Seatbelt:
    """The master's half: a pipe whose write end only the master keeps open."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def arm_in_child(master_pid: int) -> bool:
    """Set the PDEATHSIG backstop; False if the master is already gone."""
    _processes.set_pdeathsig(PDEATHSIG)
    return os.getppid() == master_pid


def parent_gone(read_fd: int) -> bool:
    """True once the seatbelt pipe is at EOF (call when poll() says it is readable)."""
    try:
        return os.read(read_fd, 1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
