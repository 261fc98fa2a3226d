"""One line per request, in Apache's combined format or as JSON.

Job: format a finished request and append it to the access log: standard output (``-``)
or a file opened with ``O_APPEND``, so that the lines of every worker process and every
thread land whole (one ``write()`` per line), never interleaved.

Must: never let a client forge a line. Everything a client sends (request target,
Referer, User-Agent) is escaped: in the combined format control bytes, non-ASCII bytes,
quotes and backslashes become ``\\xHH``, ``\\"`` and ``\\\\``; the JSON format escapes
through :func:`json.dumps`. A failing disk drops lines with one warning; it never fails
the request.

``reopen()`` (SIGUSR1, after logrotate) opens the path again and swaps it in with
``dup2()``: a thread writing at that moment writes whole to the old or to the new file.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["FORMATS", "AccessLog", "AccessRecord", "format_combined", "format_json"]

LOG = logging.getLogger("cotyledon.wsgi.access_log")

FORMATS = ("combined", "json")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Printable ASCII stays; every other code point below 256 (PEP 3333 strings are latin-1)
# becomes \xHH; quote and backslash are escaped so a field can never close its quotes.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def _escape(value: str) -> str:
    escaped = value.translate(_ESCAPES)
    # Characters above U+00FF cannot come from the wire, but an app may set REMOTE_USER.
    if not escaped.isascii():
        escaped = escaped.encode("ascii", "backslashreplace").decode("ascii")
    return escaped


def _apache_time(timestamp: float) -> str:
    """``01/Dec/2026:21:30:00 +0000`` in local time; month names without the locale."""
    moment = time.localtime(timestamp)
    offset = moment.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (
        f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
        f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} "
        f"{sign}{hours:02d}{minutes:02d}"
    )


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One finished request, as the worker saw it (strings as in the WSGI environ)."""

    remote_addr: str
    method: str
    target: str
    protocol: str
    status: int
    size: int  # bytes of the response body, headers excluded (Apache %b)
    referer: str | None
    user_agent: str | None
    user: str | None
    start_time: float  # time.time() when the request head was read
    duration: float  # seconds


def format_combined(r: AccessRecord) -> str:
    """Apache's combined format (``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``)
    followed by the duration in microseconds (``%D``), newline included."""
    request = _escape(f"{r.method} {r.target} {r.protocol}")
    return (
        f"{_escape(r.remote_addr)} - {_escape(r.user) if r.user else '-'} "
        f"[{_apache_time(r.start_time)}] "
        f'"{request}" {r.status} {r.size if r.size else "-"} '
        f'"{_escape(r.referer) if r.referer else "-"}" '
        f'"{_escape(r.user_agent) if r.user_agent else "-"}" '
        f"{round(r.duration * 1e6)}\n"
    )


def format_json(r: AccessRecord) -> str:
    """One JSON object per line, ASCII only, newline included."""
    path, _, query = r.target.partition("?")
    moment = datetime.datetime.fromtimestamp(r.start_time).astimezone()
    record = {
        "time": moment.isoformat(timespec="milliseconds"),
        "remote_addr": r.remote_addr,
        "method": r.method,
        "target": r.target,
        "path": path,
        "query": query,
        "protocol": r.protocol,
        "status": r.status,
        "bytes": r.size,
        "referer": r.referer,
        "user_agent": r.user_agent,
        "user": r.user,
        "duration_ms": round(r.duration * 1000, 3),
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


_FORMATTERS = {"combined": format_combined, "json": format_json}


class AccessLog:
    """The access log of one worker process.

    :param target: a file path, ``"-"`` for standard output, or ``None`` (disabled).
    :param fmt: ``"combined"`` or ``"json"``.
    :raises ValueError: unknown ``fmt``.
    :raises OSError: the file cannot be opened.
    """

    def __init__(self, target: str | None, fmt: str = "combined") -> None:
        if fmt not in _FORMATTERS:
            raise ValueError(f"access log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.target = target
        self.format = fmt
        self._formatter = _FORMATTERS[fmt]
        self._fd = -1
        self._owns_fd = False
        self._failed = False
        self.dropped = 0
        if target == "-":
            self._fd = sys.stdout.fileno()
        elif target is not None:
            self._fd = self._open()
            self._owns_fd = True

    @property
    def enabled(self) -> bool:
        return self._fd >= 0

    def _open(self) -> int:
        assert self.target is not None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.target, flags, 0o644)

    def log(self, **fields: Any) -> None:
        """Format and write one request; ``fields`` are those of :class:`AccessRecord`."""
        if self._fd < 0:
            return
        self.write(self._formatter(AccessRecord(**fields)))

    def write(self, line: str) -> None:
        data = line.encode("ascii", "backslashreplace")
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError as exc:
            self.dropped += 1
            if not self._failed:
                self._failed = True
                LOG.warning("Access log %s: cannot write (%s); dropping lines", self.target, exc)
        else:
            self._failed = False

    def reopen(self) -> None:
        """Open the path again (after logrotate moved it); nothing to do for stdout."""
        if not self._owns_fd or self._fd < 0:
            return
        try:
            fresh = self._open()
        except OSError as exc:
            LOG.warning(
                "Access log %s: cannot reopen (%s); keeping the old file", self.target, exc
            )
            return
        try:
            os.dup2(fresh, self._fd, inheritable=False)
        finally:
            os.close(fresh)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if self._owns_fd and fd >= 0:
            os.close(fd)
