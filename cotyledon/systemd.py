"""Public systemd helpers for programs run by cotyledon (or on their own).

Job: a small, stable API over :mod:`cotyledon._systemd` and the worker -> master channel:

* :func:`notify` adds to what the master tells systemd (``STATUS=``, ``X_*`` keys). In the
  master it sends directly; in a worker it asks the master to relay, because
  ``NotifyAccess=main`` makes systemd drop datagrams from any other pid.
* :func:`set_health` is the health contract: a worker (or the master) that reports itself
  unhealthy stops the master's ``WATCHDOG=1`` pings, so systemd's ``WatchdogSec=`` fires and
  ``Restart=`` starts the unit again.
* :func:`listen_fds` / :func:`listen_sockets` adopt socket-activated listeners by name.

Must not: decide when the master sends READY/RELOADING/STOPPING (the service manager does),
or log at DEBUG and above.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import MutableMapping

from cotyledon import _control, _systemd
from cotyledon._systemd import ListenFd, ListenFdsError, booted

__all__ = [
    "ListenFd",
    "ListenFdsError",
    "booted",
    "is_healthy",
    "listen_fds",
    "listen_sockets",
    "notify",
    "set_health",
]

# Keys a worker may ask the master to relay; the lifecycle ones belong to the master.
WORKER_KEYS_HELP = "STATUS and X_* keys"

_lock = threading.Lock()
_notifier: _systemd.Notifier | None = None
_adopted: dict[str, list[socket.socket]] | None = None


def _in_worker() -> bool:
    return _control.in_worker()


def _send_to_master(kind: str, payload: str) -> bool:
    return _control.send_to_master(kind, payload)


def _master_notifier() -> _systemd.Notifier:
    global _notifier
    with _lock:
        if _notifier is None:
            _notifier = _systemd.Notifier.from_environ()
        return _notifier


def _worker_may_send(key: str) -> bool:
    return key == "STATUS" or key.startswith("X_")


def notify(*, status: str | None = None, **extra: object) -> bool:
    """Tell systemd something about this service: ``notify(status="warming cache")``.

    ``status`` becomes ``STATUS=`` (one line: line breaks become spaces); ``extra`` keyword
    arguments are sent as ``KEY=VALUE`` (use an ``X_`` prefix for your own keys).

    In the master process (or a program not run by cotyledon) the datagram goes straight to
    ``$NOTIFY_SOCKET``. In a worker it is relayed by the master, which forwards only
    ``STATUS`` and ``X_*`` keys. Note that the master also writes ``STATUS=`` itself at each
    lifecycle step (started, reloading, stopping), which replaces yours.

    :returns: True if the message was sent (master) or handed to the master (worker);
              False when not running under systemd or the channel is gone.
    :raises ValueError: on an invalid key, no field at all, or (in a worker) a key the
              master does not relay, such as ``READY``.
    """
    fields: dict[str, object] = {}
    if status is not None:
        fields["STATUS"] = status
    fields.update(extra)
    payload = _systemd.format_message(fields)
    if not _in_worker():
        return _master_notifier().notify(**fields)
    refused = [key for key in fields if not _worker_may_send(key)]
    if refused:
        raise ValueError(
            f"a worker may only send {WORKER_KEYS_HELP} (the master owns the lifecycle "
            f"messages), not: {', '.join(refused)}"
        )
    return _send_to_master("notify", _systemd.escape_payload(payload))


def set_health(ok: bool, reason: str = "") -> bool:
    """Report this process healthy (``ok=True``) or not.

    In a worker, the report goes to the master: while any live worker is unhealthy the
    master stops its ``WATCHDOG=1`` pings (a worker that dies is forgotten). In the master,
    it stops (or resumes) the pings directly. With ``WatchdogSec=`` set on the unit,
    systemd then kills the unit after the watchdog timeout, and ``Restart=on-failure``
    (or ``on-watchdog``) starts it again. Without a watchdog this only records the state.

    :param reason: one short line saying why, kept for logs and status pages.
    :returns: True if the state was recorded (master) or handed to the master (worker).
    """
    reason = " ".join(reason.split())
    if _in_worker():
        return _send_to_master("health", "ok" if ok else f"fail {reason}".rstrip())
    _systemd.set_local_health(ok, reason)
    return True


def is_healthy() -> tuple[bool, str]:
    """This process's own health as last set by :func:`set_health` (master side)."""
    return _systemd.local_health()


def listen_fds(unset_environment: bool = True) -> list[ListenFd]:
    """The sockets systemd passed to this process, in order, as ``(name, socket)`` pairs.

    See :func:`cotyledon._systemd.listen_fds`: ``LISTEN_PID`` must be our pid, the fds are
    checked to be sockets and made close-on-exec, and the variables are removed. A second
    call therefore returns an empty list: use :func:`listen_sockets` to share them.

    :raises ListenFdsError: the variables are meant for us but do not match our fds.
    """
    return _systemd.listen_fds(unset_environment=unset_environment)


def listen_sockets(
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, list[socket.socket]]:
    """Socket-activated listeners grouped by ``FileDescriptorName=`` (``"unknown"`` if unset).

    Adopted once per process and cached, so every caller sees the same socket objects;
    do not close them unless you own the whole program.

    :raises ListenFdsError: the variables are meant for us but do not match our fds.
    """
    global _adopted
    with _lock:
        if _adopted is None:
            grouped: dict[str, list[socket.socket]] = {}
            for name, sock in _systemd.listen_fds(environ):
                grouped.setdefault(name, []).append(sock)
            _adopted = grouped
        return {name: list(socks) for name, socks in _adopted.items()}
