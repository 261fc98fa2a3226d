"""The self-pipe that turns signals into bytes the event loop can wait on.

Job: own the master's (or a worker's) signal plumbing: a close-on-exec, non-blocking pipe
given to :func:`signal.set_wakeup_fd`, do-nothing Python handlers for the signals we care
about (the C-level handler writes the signal number into the pipe), restoring what was
there before, and reading the pending signal numbers. Also: blocking signals around
``fork()`` so that a signal sent to a just-forked child can never be written into the
parent's pipe (spec/api.md section 6.1), and resetting everything first thing in a child.

Why a self-pipe and not handlers that do work: CPython runs handlers only in the main
thread between bytecodes (python bug 5315); a byte in a pipe watched by ``poll()`` always
wakes the loop, and the loop handles the signal outside any handler, where logging and
forking are safe. The byte 0 is never a signal: :meth:`SignalPipe.wake` writes it so
another thread can wake the loop.

Must not: log, or do anything inside a handler.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterable, Iterator
from types import FrameType

#: Byte written by :meth:`SignalPipe.wake`: "look at your command queue".
WAKE = 0


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the C handler already wrote the byte."""


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    return read_fd, write_fd


class SignalPipe:
    """A wakeup-fd self-pipe for ``signals``, installed by :meth:`install`."""

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(signals)
        self.read_fd, self.write_fd = _pipe()
        self._previous: dict[int, object] = {}
        self._previous_wakeup_fd: int | None = None

    def fileno(self) -> int:
        return self.read_fd

    def install(self) -> None:
        """Install the wakeup fd, then the handlers (main thread only).

        In this order a signal arriving in between finds either its old disposition or a
        handler whose byte reaches the pipe, never a do-nothing handler without a pipe
        (that would lose it).
        """
        self._previous_wakeup_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, _ignore)

    def restore(self) -> None:
        """Put back the handlers, then the wakeup fd, that were there before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None

    def read(self) -> list[int]:
        """Every pending byte (signal numbers, and :data:`WAKE`), in arrival order."""
        data = b""
        while True:
            try:
                chunk = os.read(self.read_fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
            if len(chunk) < 4096:
                break
        return list(data)

    def wake(self) -> None:
        """Wake the loop from another thread (or a hook). Never blocks."""
        with contextlib.suppress(BlockingIOError):
            os.write(self.write_fd, bytes([WAKE]))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self.write_fd = -1


@contextlib.contextmanager
def blocked(signals: Iterable[int]) -> Iterator[set[int]]:
    """Block ``signals`` in this thread for the duration (around ``fork()``); yields the
    mask that was in force before, which a child restores once it is set up."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield {int(sig) for sig in previous}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def all_signals() -> set[int]:
    """Every signal that can be blocked: a fork blocks them all, so that no signal sent to
    the fresh child can run a handler of the parent's (whichever library installed it)."""
    return {int(sig) for sig in signal.valid_signals()} - {signal.SIGKILL, signal.SIGSTOP}


def reset_in_child(signals: Iterable[int], fds: Iterable[int]) -> None:
    """First thing in a freshly forked child (signals still blocked): drop the parent's
    handlers and wakeup fd and close the parent's fds, so nothing reaches the parent."""
    signal.set_wakeup_fd(-1)
    for signum in signals:
        signal.signal(signum, signal.SIG_DFL)
    for fd in fds:
        try:
            os.close(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise


def restore_mask(mask: Iterable[int]) -> None:
    """Set this thread's signal mask (in a child: the one from before the fork)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
