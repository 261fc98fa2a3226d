"""A fake PID 1 for tests: the receiving end of ``$NOTIFY_SOCKET``.

:class:`FakeNotifySocket` binds an ``AF_UNIX``/``SOCK_DGRAM`` socket (a short filesystem path
or an ``@abstract`` name) with ``SO_PASSCRED``, so the kernel stamps every datagram with the
sender's real pid, and collects messages in a thread. Like systemd it closes any fd received
with ``BARRIER=1`` (``systemd-notify --ready`` waits for that), and every other passed fd.

Tests wait for messages with :meth:`FakeNotifySocket.wait_for` (a deadline, never a sleep).
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_CREDS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_MAX_FDS = 16


@dataclass(frozen=True)
class Message:
    """One datagram received: sender credentials, parsed fields, arrival time (monotonic)."""

    pid: int
    uid: int
    raw: bytes
    fields: dict[str, str]
    received: float
    nfds: int = 0
    order: int = field(default=0, compare=False)

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def get(self, key: str) -> str | None:
        return self.fields.get(key)


def parse_payload(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class FakeNotifySocket:
    """Receive sd_notify datagrams like systemd would. Use as a context manager."""

    def __init__(self, kind: str = "abstract") -> None:
        self.kind = kind
        self._dir: str | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        if kind == "abstract":
            name = f"cotyledon-test-{os.getpid()}-{id(self):x}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        elif kind == "path":
            # sun_path is 108 bytes and pytest's tmp_path can be longer: use a short dir.
            self._dir = tempfile.mkdtemp(prefix="ctn-", dir="/tmp")
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)
        else:
            raise ValueError(f"kind must be 'abstract' or 'path', not {kind!r}")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.05)
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive_loop, daemon=True)
        self._thread.start()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a program under test: ``NOTIFY_SOCKET`` plus ``extra``."""
        return {"NOTIFY_SOCKET": self.address, **extra}

    def _receive_one(self) -> Message | None:
        try:
            raw, ancdata, _flags, _addr = self.sock.recvmsg(
                65536,
                socket.CMSG_SPACE(_CREDS.size) + socket.CMSG_SPACE(_MAX_FDS * 4),
            )
        except (TimeoutError, BlockingIOError):
            return None
        pid = uid = -1
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, uid, _gid = _CREDS.unpack(data[: _CREDS.size])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(data) - len(data) % 4
                fds.extend(array.array("i", data[:usable]))
        for fd in fds:  # BARRIER=1 is answered by closing its fd; we keep no fd at all.
            os.close(fd)
        return Message(pid, uid, raw, parse_payload(raw), time.monotonic(), len(fds))

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._receive_one()
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if message is None:
                continue
            with self._cond:
                self.messages.append(dataclasses.replace(message, order=len(self.messages)))
                self._cond.notify_all()

    def snapshot(self) -> list[Message]:
        with self._cond:
            return list(self.messages)

    def wait_for(
        self,
        predicate: Callable[[Message], bool],
        timeout: float = 20.0,
        what: str = "a notification",
        start: int = 0,
    ) -> Message:
        """The first message at index >= ``start`` matching ``predicate``, within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[start:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(repr(m.raw) for m in self.messages[-30:])
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{seen}")
                self._cond.wait(min(remaining, 0.2))

    def wait_key(self, key: str, value: str | None = None, **kwargs: object) -> Message:
        """The first message carrying ``key`` (with ``value`` if given)."""

        def match(message: Message) -> bool:
            return key in message.fields and (value is None or message.fields[key] == value)

        what = f"{key}={value if value is not None else '*'}"
        return self.wait_for(match, what=what, **kwargs)  # type: ignore[arg-type]

    def with_key(self, key: str) -> list[Message]:
        return [m for m in self.snapshot() if key in m.fields]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeNotifySocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def fake_notify_socket(kind: str = "abstract") -> Iterator[FakeNotifySocket]:
    """Context manager form, for fixtures: ``with fake_notify_socket("path") as pid1: ...``."""
    server = FakeNotifySocket(kind)
    try:
        yield server
    finally:
        server.close()
