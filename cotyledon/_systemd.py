"""The systemd protocols, spoken from this process: sd_notify datagrams, the watchdog
environment, socket activation (``LISTEN_FDS``) and the scrub of a worker's environment.

Job: turn calls like ``notifier.ready(status="2/2 workers")`` into one ``AF_UNIX``
datagram to ``$NOTIFY_SOCKET``, tell the master how often to ping the watchdog, and turn
``LISTEN_*`` into socket objects. See doc/source/systemd.rst and spec/systemd.md.

Must not: decide *when* to notify (the master driver does: READY after every initial
worker started, RELOADING around SIGHUP, ...), import anything of cotyledon, block the
caller for long, or log at DEBUG and above except the one compat line
``Systemd notification failed`` on ``cotyledon._service_manager``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    # Imported where a socket is made: `import cotyledon` does not pay for it.
    import socket

__all__ = [
    "CHILD_ENVIRON_KEYS",
    "SD_LISTEN_FDS_START",
    "ListenFd",
    "ListenFdsError",
    "Notifier",
    "booted",
    "escape_payload",
    "format_message",
    "listen_fds",
    "local_health",
    "monotonic_usec",
    "notify_address",
    "scrub_child_environ",
    "set_local_health",
    "unescape_payload",
]

# The compat logger: upstream logs this one line there, at DEBUG (spec/api.md §2).
_COMPAT_LOG = logging.getLogger("cotyledon._service_manager")
# Our own diagnostics stay below DEBUG, so they never change what a log pipeline sees.
_LOG = logging.getLogger(__name__)
TRACE = 5

SD_LISTEN_FDS_START = 3
CHILD_ENVIRON_KEYS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
)
# A blocked PID 1 must not freeze the master's event loop for long; systemd's notify
# socket has a deep queue, so hitting this means the message is lost anyway.
SEND_TIMEOUT = 1.0

# Linux has CLOCK_MONOTONIC; elsewhere (nominal support) time.monotonic is the system's
# monotonic clock.
_CLOCK_MONOTONIC = getattr(time, "CLOCK_MONOTONIC", None)

_KEY = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_NEWLINES = re.compile(r"[\r\n]+")

Environ = MutableMapping[str, str]


def _environ(environ: Environ | None) -> Environ:
    return os.environ if environ is None else environ


def notify_address(value: str | None) -> str | bytes | None:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value, or None if unsupported.

    ``/path`` is a filesystem socket, ``@name`` an abstract one (NUL-prefixed). Anything
    else (``vsock:...``, relative paths, empty) is not ours to speak to.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None


def format_message(fields: dict[str, object]) -> bytes:
    """``{"READY": 1, "STATUS": "a\\nb"}`` -> ``b"READY=1\\nSTATUS=a b"``.

    Keys must be upper-case environment-style names (``X_`` for private ones). Values are
    made single-line: embedded line breaks become one space.

    :raises ValueError: on an invalid key or no field at all.
    """
    if not fields:
        raise ValueError("an sd_notify message needs at least one KEY=VALUE field")
    lines = []
    for key, value in fields.items():
        if not _KEY.match(key):
            raise ValueError(f"invalid sd_notify key {key!r}: must match [A-Z][A-Z0-9_]*")
        shown = int(value) if isinstance(value, bool) else value
        text = _NEWLINES.sub(" ", str(shown)).strip()
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode("utf-8", errors="replace")


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` now, in microseconds (what ``MONOTONIC_USEC=`` carries)."""
    if _CLOCK_MONOTONIC is not None:
        return time.clock_gettime_ns(_CLOCK_MONOTONIC) // 1000
    return time.monotonic_ns() // 1000


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _watchdog_usec(environ: Environ) -> int | None:
    """``WATCHDOG_USEC`` if the watchdog is meant for this process (sd_watchdog_enabled)."""
    usec = _int_or_none(environ.get("WATCHDOG_USEC"))
    if usec is None or usec <= 0:
        return None
    if "WATCHDOG_PID" in environ and _int_or_none(environ["WATCHDOG_PID"]) != os.getpid():
        return None
    return usec


class Notifier:
    """Sends sd_notify messages for this process (the master).

    Build it with :meth:`from_environ`. When ``$NOTIFY_SOCKET`` is absent or unsupported,
    :attr:`enabled` is False and every method returns False without doing anything.
    Messages are only sent from the process that built the notifier: after a fork, the
    child's copy closes its socket and stays silent (``NotifyAccess=main`` would drop them).
    """

    def __init__(self, address: str | bytes | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.enabled = address is not None
        self.watchdog_usec = watchdog_usec if self.enabled else None
        self.watchdog_interval: float | None = (
            self.watchdog_usec / 2_000_000 if self.watchdog_usec else None
        )
        self._owner = os.getpid()
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Environ | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` / ``$WATCHDOG_*`` of ``environ``. Never raises."""
        env = _environ(environ)
        value = env.get("NOTIFY_SOCKET")
        address = notify_address(value)
        if value and address is None:
            _LOG.log(TRACE, "Unsupported NOTIFY_SOCKET %r: notifications disabled", value)
        if address is None:
            return cls(None)
        return cls(address, _watchdog_usec(env))

    def __repr__(self) -> str:
        return f"<Notifier address={self.address!r} watchdog_usec={self.watchdog_usec}>"

    def _socket(self) -> socket.socket:
        if self._sock is None:
            import socket  # noqa: PLC0415 - see the TYPE_CHECKING import

            # Linux has SOCK_CLOEXEC; elsewhere (nominal support) Python's sockets are
            # close-on-exec anyway (PEP 446).
            cloexec = getattr(socket, "SOCK_CLOEXEC", 0)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | cloexec)
            self._sock.settimeout(SEND_TIMEOUT)
        return self._sock

    def notify(self, **fields: object) -> bool:
        """Send ``fields`` as one datagram, in the given order; True if it was sent.

        ``notify(READY=1, STATUS="2/2 workers")`` sends ``READY=1\\nSTATUS=2/2 workers``.

        :raises ValueError: on an invalid key (a programming error, not a runtime one).
        """
        payload = format_message(fields)
        if not self.enabled or self.address is None:
            return False
        if os.getpid() != self._owner:
            self.close()
            return False
        try:
            self._socket().sendto(payload, self.address)
        except OSError:
            _COMPAT_LOG.debug("Systemd notification failed", exc_info=True)
            return False
        _LOG.log(TRACE, "sd_notify %r", payload)
        return True

    def _with_status(self, status: str | None, **fields: object) -> bool:
        if status is not None:
            fields["STATUS"] = status
        return self.notify(**fields)

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (start-up or a reload finished), with an optional ``STATUS=``."""
        return self._with_status(status, READY=1)

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` + ``MONOTONIC_USEC=`` now (``Type=notify-reload`` needs both)."""
        now_usec = monotonic_usec()
        return self._with_status(status, RELOADING=1, MONOTONIC_USEC=now_usec)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown began."""
        return self._with_status(status, STOPPING=1)

    def status(self, text: str) -> bool:
        """``STATUS=<text>``, made single-line."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1`` keep-alive ping; False (nothing sent) when no watchdog is ours
        or this process reported itself unhealthy (:func:`set_local_health`)."""
        if self.watchdog_usec is None or not _local_health[0]:
            return False
        return self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC=``: ask for ``seconds`` more in the current phase."""
        return self.notify(EXTEND_TIMEOUT_USEC=max(0, int(seconds * 1_000_000)))

    def mainpid(self, pid: int) -> bool:
        """``MAINPID=<pid>``: the main process of the unit is now ``pid``."""
        return self.notify(MAINPID=pid)

    def close(self) -> None:
        """Close the socket (it is reopened on the next message)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


# This process's own health (the health contract, master side): while False, watchdog()
# sends nothing, so systemd's WatchdogSec= fires. Workers report theirs to the master.
_local_health: tuple[bool, str] = (True, "")


def set_local_health(ok: bool, reason: str = "") -> None:
    """Record this process's health; an unhealthy process stops its own watchdog pings."""
    global _local_health
    _local_health = (bool(ok), "" if ok else reason)


def local_health() -> tuple[bool, str]:
    """``(ok, reason)`` as last recorded by :func:`set_local_health`."""
    return _local_health


def escape_payload(payload: bytes) -> str:
    """A multi-line sd_notify payload as one line (backslash and line feed escaped), for the
    worker -> master channel; :func:`unescape_payload` is the inverse."""
    return payload.decode("utf-8").replace("\\", "\\\\").replace("\n", "\\n")


def unescape_payload(line: str) -> dict[str, str]:
    """Parse an :func:`escape_payload` line back into ordered ``{KEY: VALUE}`` fields.

    Lines without ``=`` or with an invalid key are dropped (the sender is untrusted).
    """
    text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), line)
    fields: dict[str, str] = {}
    for entry in text.split("\n"):
        key, sep, value = entry.partition("=")
        if sep and _KEY.match(key):
            fields[key] = value
    return fields


def scrub_child_environ(environ: Environ | None = None) -> None:
    """Remove what systemd meant for the master from a worker's environment.

    ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``/``_PID`` and ``LISTEN_PID``/``_FDS``/``_FDNAMES``:
    so application code and its subprocesses cannot notify or adopt sockets in our name.
    """
    env = _environ(environ)
    for key in CHILD_ENVIRON_KEYS:
        env.pop(key, None)


class ListenFdsError(ValueError):
    """``LISTEN_FDS``/``LISTEN_FDNAMES`` are meant for us but do not describe our fds."""


class ListenFd(NamedTuple):
    """One socket passed by systemd: its ``FileDescriptorName=`` and the socket object."""

    name: str
    socket: socket.socket


def _listen_count(env: Environ) -> int:
    """How many fds ``LISTEN_*`` hand to this process (0 if they are not ours)."""
    if _int_or_none(env.get("LISTEN_PID")) != os.getpid():
        return 0
    raw = env.get("LISTEN_FDS", "")
    count = _int_or_none(raw)
    if count is None or count < 0:
        raise ListenFdsError(f"LISTEN_FDS must be a count >= 0, not: {raw!r}")
    return count


def _listen_names(env: Environ, count: int) -> list[str]:
    raw = env.get("LISTEN_FDNAMES")
    if raw is None:
        return ["unknown"] * count
    names = raw.split(":")
    if len(names) != count:
        raise ListenFdsError(
            f"LISTEN_FDNAMES has {len(names)} names ({raw!r}) for LISTEN_FDS={count}"
        )
    return [name or "unknown" for name in names]


def _check_socket_fd(fd: int, count: int) -> None:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
        raise ListenFdsError(f"LISTEN_FDS={count} but fd {fd} is not open") from None
    if not stat.S_ISSOCK(mode):
        raise ListenFdsError(f"LISTEN_FDS={count} but fd {fd} is not a socket")


def listen_fds(environ: Environ | None = None, unset_environment: bool = True) -> list[ListenFd]:
    """Adopt the sockets systemd passed to this process (``sd_listen_fds_with_names``).

    Ignored (empty list) unless ``LISTEN_PID`` is our pid. Fds ``3 .. 3+LISTEN_FDS-1`` are
    checked to be sockets, marked close-on-exec (workers get them by fork, never by exec)
    and wrapped in :class:`socket.socket` (family and type read from the fd). Names come
    from ``LISTEN_FDNAMES`` (``"unknown"`` when absent). With ``unset_environment`` the
    three variables are removed, whatever the outcome, so a second call returns nothing.

    :raises ListenFdsError: the variables are ours but wrong (bad count, names, fds).
    """
    env = _environ(environ)
    try:
        count = _listen_count(env)
        if count == 0:
            return []
        names = _listen_names(env, count)
        fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)
        for fd in fds:
            _check_socket_fd(fd, count)
        for fd in fds:
            os.set_inheritable(fd, False)  # FD_CLOEXEC
        pairs = zip(names, fds, strict=True)
        import socket  # noqa: PLC0415 - see the TYPE_CHECKING import

        return [ListenFd(name, socket.socket(fileno=fd)) for name, fd in pairs]
    finally:
        if unset_environment:
            for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                env.pop(key, None)


def booted() -> bool:
    """True if the machine was booted with systemd (``sd_booted``)."""
    return os.path.isdir("/run/systemd/system")
