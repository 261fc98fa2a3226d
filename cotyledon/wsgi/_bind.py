"""What ``--bind`` means: the text forms of a listening address, parsed and printed.

Pure: nothing here opens a socket or reads the process environment by itself (the
environment is passed in). ``_listeners`` turns these values into sockets.

Forms accepted by :func:`parse_bind`:

==========================  ================================================
``127.0.0.1:8000``          TCP on an IPv4 address
``localhost:8000``          TCP on a host name (resolved when opened)
``:8000``, ``8000``         TCP on 127.0.0.1 (never all interfaces by surprise)
``0.0.0.0:8000``            TCP on every IPv4 interface (explicit)
``[::1]:8000``, ``[::]:80``  TCP on an IPv6 address (brackets required)
``unix:/run/app.sock``      a Unix socket at that path
``unix:/run/app.sock:660``  ... with that octal file mode
``fd://3``                  an already listening socket inherited as fd 3
``systemd``                 every socket passed by systemd socket activation
``systemd:web``             the activated sockets named ``web`` (``FileDescriptorName=``)
==========================  ================================================
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
from collections.abc import Mapping

__all__ = [
    "DEFAULT_BIND",
    "Bind",
    "BindError",
    "FDBind",
    "SystemdBind",
    "TCPBind",
    "UnixBind",
    "default_binds",
    "format_bind",
    "parse_bind",
]

_EXPECTED = "expected HOST:PORT, [IPV6]:PORT, unix:PATH[:MODE], fd://N, systemd or systemd:NAME"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_MODE = re.compile(r"^[0-7]{3,4}$")
_FD_NAME = re.compile(r"^[^:\s]{1,255}$")


class BindError(ValueError):
    """A bind that cannot be parsed; the message quotes it and says what is expected."""


@dataclasses.dataclass(frozen=True)
class TCPBind:
    """A TCP address; ``host`` is a name, an IPv4 literal or an IPv6 literal (no brackets)."""

    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        """AF_INET6 for an IPv6 literal, AF_INET otherwise (names resolve to IPv4 first)."""
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


@dataclasses.dataclass(frozen=True)
class UnixBind:
    """A Unix stream socket at ``path``, chmod-ed to ``mode`` when given."""

    path: str
    mode: int | None = None


@dataclasses.dataclass(frozen=True)
class FDBind:
    """A listening socket this process inherited as file descriptor ``fd``."""

    fd: int


@dataclasses.dataclass(frozen=True)
class SystemdBind:
    """Socket-activated listeners: all of them, or those with ``FileDescriptorName=name``."""

    name: str | None = None


Bind = TCPBind | UnixBind | FDBind | SystemdBind

DEFAULT_BIND = TCPBind("127.0.0.1", 8000)


def _fail(text: str, why: str) -> BindError:
    return BindError(f"invalid bind {text!r}: {why}; {_EXPECTED}")


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not raw.isascii():
        raise _fail(text, f"port {raw!r} is not a number")
    port = int(raw)
    if port > 65535:
        raise _fail(text, f"port {port} is out of range 0-65535")
    return port


def _parse_tcp(text: str) -> TCPBind:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise _fail(text, "an IPv6 address needs the form [ADDRESS]:PORT")
        try:
            address = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise _fail(text, f"{host!r} is not an IPv6 address") from None
        scope = host.partition("%")[2]
        return TCPBind(
            f"{address.compressed}%{scope}" if scope else address.compressed, _port(text, rest[1:])
        )
    if text.isdigit():
        return TCPBind(DEFAULT_BIND.host, _port(text, text))
    host, sep, raw_port = text.rpartition(":")
    if not sep:
        raise _fail(text, "no port")
    if ":" in host:
        try:
            ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise _fail(text, f"{host!r} is not a host name or an IPv4 address") from None
        raise _fail(text, "an IPv6 address must be written in brackets, e.g. [::1]:8000")
    port = _port(text, raw_port)
    if not host:
        return TCPBind(DEFAULT_BIND.host, port)
    try:
        return TCPBind(str(ipaddress.IPv4Address(host)), port)
    except ValueError:
        pass
    if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
        raise _fail(text, f"{host!r} is not a host name or an IPv4 address")
    return TCPBind(host.lower(), port)


def _parse_unix(text: str) -> UnixBind:
    rest = text[len("unix:") :]
    mode: int | None = None
    head, sep, tail = rest.rpartition(":")
    if sep and _MODE.match(tail):
        rest, mode = head, int(tail, 8)
    if not rest:
        raise _fail(text, "no path after unix:")
    if "\0" in rest:
        raise _fail(text, "the path contains a NUL byte")
    if len(os.fsencode(rest)) > 107:
        raise _fail(text, "a Unix socket path is limited to 107 bytes")
    return UnixBind(rest, mode)


def _parse_fd(text: str) -> FDBind:
    raw = text[len("fd://") :]
    if not raw.isdigit() or not raw.isascii():
        raise _fail(text, f"fd {raw!r} is not a number")
    fd = int(raw)
    if fd < 3:
        raise _fail(text, "fds 0-2 are stdin, stdout and stderr, not sockets")
    return FDBind(fd)


def parse_bind(text: str) -> Bind:
    """Parse one ``--bind`` value.

    :raises BindError: the text is not one of the forms in this module's docstring.
    """
    if not isinstance(text, str):
        raise BindError(f"invalid bind {text!r}: a bind is a string; {_EXPECTED}")
    stripped = text.strip()
    if not stripped:
        raise _fail(text, "empty")
    if stripped.startswith("unix:"):
        return _parse_unix(stripped)
    if stripped.startswith("fd://"):
        return _parse_fd(stripped)
    if stripped == "systemd":
        return SystemdBind()
    if stripped.startswith("systemd:"):
        name = stripped[len("systemd:") :]
        if not _FD_NAME.match(name):
            raise _fail(text, f"{name!r} is not a FileDescriptorName")
        return SystemdBind(name)
    if "://" in stripped:
        raise _fail(text, "only fd:// is a URL form (write http://host:port as host:port)")
    return _parse_tcp(stripped)


def format_bind(bind: Bind) -> str:
    """The text :func:`parse_bind` reads back as ``bind``."""
    if isinstance(bind, TCPBind):
        host = f"[{bind.host}]" if ":" in bind.host else bind.host
        return f"{host}:{bind.port}"
    if isinstance(bind, UnixBind):
        return f"unix:{bind.path}" + (f":{bind.mode:03o}" if bind.mode is not None else "")
    if isinstance(bind, FDBind):
        return f"fd://{bind.fd}"
    return "systemd" if bind.name is None else f"systemd:{bind.name}"


def _activated_for_us(environ: Mapping[str, str]) -> bool:
    if not environ.get("LISTEN_FDS", "").strip():
        return False
    pid = environ.get("LISTEN_PID", "").strip()
    return pid == str(os.getpid())


def default_binds(environ: Mapping[str, str]) -> list[Bind]:
    """The binds used when none is given.

    Socket-activated (``LISTEN_FDS`` meant for this process): every activated socket.
    Else ``PORT`` (the Heroku/gunicorn convention): ``0.0.0.0:PORT``. Else ``127.0.0.1:8000``.

    :raises BindError: ``PORT`` is set but is not a port number.
    """
    if _activated_for_us(environ):
        return [SystemdBind()]
    port = environ.get("PORT", "").strip()
    if port:
        if not port.isdigit() or not port.isascii() or int(port) > 65535:
            raise BindError(f"invalid PORT {port!r} in the environment: expected 0-65535")
        return [TCPBind("0.0.0.0", int(port))]
    return [DEFAULT_BIND]
