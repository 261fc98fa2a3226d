"""The one-way worker -> master channel.

Job: carry short messages from workers to the master over one pipe. The master creates it
before forking (close-on-exec; read end non-blocking and in the master's poll set);
workers inherit the write end. A message is one line shorter than ``PIPE_BUF`` so that
concurrent writers never interleave: ``<pid> <kind> <payload>\\n``.

Kinds the master understands: ``started`` (the worker entered run()), ``reloaded`` (its
own reload() returned), ``notify`` (sd_notify fields to relay: STATUS and X_* only) and
``health`` (``ok`` or ``fail <reason>``). The payload is made single-line by the sender.

Must not: decide what a message means (the master driver does), or block a worker: a full
or broken pipe drops the message and :func:`send_to_master` returns False.
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import NamedTuple

#: Longest message, newline included (writes up to PIPE_BUF bytes are atomic).
MAX_MESSAGE = getattr(select, "PIPE_BUF", 512)

_write_fd: int | None = None


class Message(NamedTuple):
    pid: int
    kind: str
    payload: str


def in_worker() -> bool:
    """True in a worker process started by a manager of this process tree."""
    return _write_fd is not None and _owner_pid == os.getpid()


_owner_pid: int | None = None


def attach_worker(write_fd: int) -> None:
    """In a worker, right after fork: this is the channel to our master."""
    global _write_fd, _owner_pid
    _write_fd = write_fd
    _owner_pid = os.getpid()


def detach() -> None:
    global _write_fd, _owner_pid
    _write_fd = _owner_pid = None


def send_to_master(kind: str, payload: str = "") -> bool:
    """Send one message to the master; False if not in a worker, too long or the pipe is
    gone or full. Never blocks, never raises for I/O reasons.

    :raises ValueError: ``kind`` is empty or holds whitespace.
    """
    if not kind or any(ch.isspace() for ch in kind):
        raise ValueError(f"invalid message kind: {kind!r}")
    if not in_worker() or _write_fd is None:
        return False
    payload = payload.replace("\n", " ").replace("\r", " ")
    data = f"{os.getpid()} {kind} {payload}\n".encode(errors="replace")
    if len(data) > MAX_MESSAGE:
        return False
    try:
        return os.write(_write_fd, data) == len(data)
    except OSError:
        return False


class ControlChannel:
    """The master's half: the pipe and a line buffer for the read end."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._buffer = b""

    def fileno(self) -> int:
        return self.read_fd

    def read(self) -> list[Message]:
        """Every complete message pending in the pipe (malformed lines are dropped)."""
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [msg for msg in map(parse, lines) if msg is not None]

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def parse(line: bytes) -> Message | None:
    """``b"42 started "`` -> ``Message(42, "started", "")``; None if malformed."""
    pid, _, rest = line.decode(errors="replace").partition(" ")
    kind, _, payload = rest.partition(" ")
    if not pid.isdigit() or not kind:
        return None
    return Message(int(pid), kind, payload)
