"""Open the listening sockets, once, in the master before any worker is forked.

Workers inherit them by fork and keep serving on them across restarts of other workers;
nothing here runs in a worker. Sockets are close-on-exec (fork inherits them, an ``exec``
by application code does not) and non-blocking (workers accept from an event loop).

Must not: parse bind text (``_bind`` does), accept connections (the worker does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import stat
from collections.abc import Mapping, MutableMapping, Sequence

from cotyledon.wsgi._bind import Bind, FDBind, SystemdBind, TCPBind, UnixBind, format_bind

__all__ = ["Listener", "ListenerError", "check_listeners", "close_listeners", "open_listeners"]


class ListenerError(OSError):
    """A bind that cannot be opened: ``cannot listen on 127.0.0.1:8000: address in use``."""


@dataclasses.dataclass
class Listener:
    """An open listening socket and where it came from.

    ``display`` is the address as a person reads it in logs and on the health page, with
    the real port (``http://127.0.0.1:43117`` after binding port 0). ``owned_path`` is a
    Unix socket file we created and must unlink when we stop.
    """

    sock: socket.socket
    bind: Bind
    display: str
    owned_path: str | None = None


def _describe(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc)


def _display(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = address.decode(errors="replace") if isinstance(address, bytes) else address
        return f"unix:{path}" if path else "unix:(unnamed)"
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _prepare(sock: socket.socket) -> socket.socket:
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def _open_tcp(bind: TCPBind, backlog: int) -> Listener:
    try:
        infos = socket.getaddrinfo(
            bind.host, bind.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenerError(
            errno.EADDRNOTAVAIL,
            f"cannot listen on {format_bind(bind)}: cannot resolve {bind.host!r} ({exc})",
        ) from exc
    # The first address the resolver prefers, as other servers do; a name that resolves
    # to several addresses takes one bind per address if all are wanted.
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenerError(
            exc.errno, f"cannot listen on {format_bind(bind)}: {_describe(exc)}"
        ) from exc
    return Listener(_prepare(sock), bind, _display(sock))


def _someone_answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


def _clear_stale_unix(bind: UnixBind) -> None:
    """Remove a socket file left by a dead server; refuse a live one or a non-socket."""
    try:
        mode = os.lstat(bind.path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ListenerError(
            errno.EEXIST, f"cannot listen on {format_bind(bind)}: the path exists, not a socket"
        )
    if _someone_answers(bind.path):
        raise ListenerError(
            errno.EADDRINUSE,
            f"cannot listen on {format_bind(bind)}: another server is listening there",
        )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(bind.path)


def _open_unix(bind: UnixBind, backlog: int) -> Listener:
    _clear_stale_unix(bind)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(bind.path)
    except OSError as exc:
        sock.close()
        raise ListenerError(
            exc.errno, f"cannot listen on {format_bind(bind)}: {_describe(exc)}"
        ) from exc
    try:
        if bind.mode is not None:
            os.chmod(bind.path, bind.mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(bind.path)
        raise ListenerError(
            exc.errno, f"cannot listen on {format_bind(bind)}: {_describe(exc)}"
        ) from exc
    return Listener(_prepare(sock), bind, _display(sock), owned_path=bind.path)


def _open_fd(bind: FDBind) -> Listener:
    where = f"cannot listen on {format_bind(bind)}"
    try:
        mode = os.fstat(bind.fd).st_mode
    except OSError as exc:
        raise ListenerError(exc.errno, f"{where}: fd {bind.fd} is not open") from exc
    if not stat.S_ISSOCK(mode):
        raise ListenerError(errno.ENOTSOCK, f"{where}: fd {bind.fd} is not a socket")
    sock = socket.socket(fileno=bind.fd)
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ListenerError(errno.EPROTOTYPE, f"{where}: not a stream (TCP/Unix) socket")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ListenerError(errno.EINVAL, f"{where}: the socket is not listening")
    except BaseException:
        sock.detach()  # not ours to close: the caller still owns the fd
        raise
    return Listener(_prepare(sock), bind, _display(sock))


def _activated(environ: Mapping[str, str] | None) -> dict[str, list[socket.socket]]:
    from cotyledon import systemd  # noqa: PLC0415 (only socket-activated servers need it)

    if environ is None or isinstance(environ, MutableMapping):
        return systemd.listen_sockets(environ)
    return systemd.listen_sockets(dict(environ))


def _open_systemd(bind: SystemdBind, environ: Mapping[str, str] | None) -> list[Listener]:
    try:
        groups = _activated(environ)
    except ValueError as exc:  # ListenFdsError: the variables do not match our fds
        raise ListenerError(errno.EBADF, f"cannot use socket activation: {exc}") from exc
    if bind.name is None:
        socks = [sock for group in groups.values() for sock in group]
    else:
        socks = list(groups.get(bind.name, ()))
    if not socks:
        what = "no socket" if bind.name is None else f"no socket named {bind.name!r}"
        known = ", ".join(sorted(groups)) or "none"
        raise ListenerError(
            errno.ENOENT,
            f"cannot listen on {format_bind(bind)}: systemd passed {what} "
            f"(LISTEN_FDS/LISTEN_PID not set for this process?; names passed: {known})",
        )
    listeners = []
    for sock in socks:
        if sock.type != socket.SOCK_STREAM:
            raise ListenerError(
                errno.EPROTOTYPE,
                f"cannot listen on {format_bind(bind)}: fd {sock.fileno()} is not a stream "
                "socket (ListenStream= in the .socket unit)",
            )
        listeners.append(Listener(_prepare(sock), bind, _display(sock)))
    return listeners


def open_listeners(
    binds: Sequence[Bind],
    *,
    backlog: int = 2048,
    environ: Mapping[str, str] | None = None,
) -> list[Listener]:
    """Open every bind, in order; all or nothing.

    :param environ: where ``LISTEN_*`` are read for ``systemd`` binds (default
        ``os.environ``; the variables are removed once adopted).
    :raises ListenerError: naming the first bind that failed; the sockets opened before it
        are closed again (inherited ``fd://`` and systemd sockets are left open).
    """
    if not binds:
        raise ValueError("open_listeners() needs at least one bind")
    opened: list[Listener] = []
    seen: set[int] = set()
    try:
        for bind in binds:
            if isinstance(bind, TCPBind):
                new = [_open_tcp(bind, backlog)]
            elif isinstance(bind, UnixBind):
                new = [_open_unix(bind, backlog)]
            elif isinstance(bind, FDBind):
                new = [_open_fd(bind)]
            elif isinstance(bind, SystemdBind):
                new = _open_systemd(bind, environ)
            else:
                raise TypeError(f"not a bind: {bind!r}")
            for listener in new:
                if listener.sock.fileno() not in seen:  # "systemd" and "systemd:web" overlap
                    seen.add(listener.sock.fileno())
                    opened.append(listener)
    except BaseException:
        close_listeners([lsn for lsn in opened if _owned(lsn)])
        raise
    return opened


def _owned(listener: Listener) -> bool:
    return isinstance(listener.bind, TCPBind | UnixBind)


def close_listeners(listeners: Sequence[Listener]) -> None:
    """Close the sockets and unlink the Unix socket files we created."""
    for listener in listeners:
        with contextlib.suppress(OSError):
            listener.sock.close()
        if listener.owned_path is not None:
            with contextlib.suppress(FileNotFoundError, OSError):
                os.unlink(listener.owned_path)


def check_listeners(
    binds: Sequence[Bind], *, backlog: int = 2048, environ: Mapping[str, str] | None = None
) -> None:
    """Open every bind as :func:`open_listeners` would, then close them again
    (``--check-config``): a busy port, a live Unix socket or an ``fd://N`` that is not an
    open listening socket raises :class:`ListenerError` naming it. Inherited sockets
    (``fd://``, systemd) are left open.
    """
    listeners = open_listeners(binds, backlog=backlog, environ=environ)
    close_listeners([lsn for lsn in listeners if _owned(lsn)])
    for listener in listeners:
        if not _owned(listener):
            listener.sock.detach()  # the fd stays open: it is not ours to close
