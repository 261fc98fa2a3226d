"""PEP 3333's response side: ``start_response``, ``write()``, exc_info, ``wsgi.file_wrapper``.

:class:`StartResponse` validates what the app gives (status line, header names and values:
no CR/LF/NUL, latin-1 ``str`` only, so a response cannot be split) and keeps the state PEP
3333 defines: one call unless ``exc_info`` is given, and a re-raise when the head has
already gone out. Hop-by-hop headers are the server's job: ``Connection: close`` from the
app is honoured, the others are dropped.

This module does no I/O: the connection driver gives :class:`StartResponse` a ``write``
callable and asks it for the head to send (:meth:`StartResponse.head`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, Any

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_STATUS_RE = re.compile(r"[1-9][0-9][0-9] [^\r\n\x00]*\Z")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class ResponseError(RuntimeError):
    """The app broke PEP 3333 (bad status or header, start_response misuse)."""


def parse_status(status: object) -> tuple[int, bytes]:
    """``"200 OK"`` -> ``(200, b"OK")``; anything else raises ResponseError."""
    if not isinstance(status, str) or not _STATUS_RE.match(status):
        raise ResponseError(f"invalid status line from the app: {status!r}")
    try:
        reason = status[4:].encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError(f"status line is not latin-1: {status!r}") from None
    return int(status[:3]), reason


def encode_headers(headers: object) -> tuple[list[tuple[bytes, bytes]], bool, int | None]:
    """Validated headers as bytes, minus hop-by-hop ones.

    Returns (headers, close_requested, content_length or None).
    """
    if not isinstance(headers, list):
        raise ResponseError(f"response headers must be a list, not {type(headers).__name__}")
    result: list[tuple[bytes, bytes]] = []
    close = False
    length: int | None = None
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ResponseError(f"a response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if not (isinstance(name, str) and _TOKEN_RE.match(name)):
            raise ResponseError(f"invalid response header name: {name!r}")
        if not isinstance(value, str) or _BAD_VALUE_RE.search(value):
            raise ResponseError(f"invalid value for response header {name}: {value!r}")
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            close = close or (lower == "connection" and "close" in value.lower())
            continue
        if lower == "content-length":
            if not value.isdigit() or not value.isascii() or length is not None:
                raise ResponseError(f"invalid Content-Length from the app: {value!r}")
            length = int(value)
        try:
            result.append((name.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ResponseError(f"response header {name} is not latin-1: {value!r}") from None
    return result, close, length


class StartResponse:
    """The ``start_response`` callable of one request.

    ``write`` is the driver's PEP 3333 ``write()`` (sends the head first if needed).
    The driver sets :attr:`head_sent` once the head is out.
    """

    __slots__ = ("close", "content_length", "head_sent", "headers", "reason", "status", "write")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.status: int | None = None
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.close = False
        self.content_length: int | None = None
        self.head_sent = False

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle (PEP 3333)
        elif self.status is not None:
            raise ResponseError("start_response() called twice without exc_info")
        code, reason = parse_status(status)
        encoded, close, length = encode_headers(headers)
        self.status, self.reason = code, reason
        self.headers, self.close, self.content_length = encoded, close, length
        return self.write

    @property
    def started(self) -> bool:
        return self.status is not None


class FileWrapper:
    """``wsgi.file_wrapper``: iterates ``filelike`` in blocks; the driver uses ``sendfile``
    instead when ``filelike`` is a regular file with a ``fileno()``."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def close(self) -> None:
        """Close ``filelike`` when it has a ``close()`` (PEP 3333)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block


def close_iterable(result: Any) -> None:
    """Call ``result.close()`` if it has one (always, per PEP 3333)."""
    close = getattr(result, "close", None)
    if close is not None:
        close()


def known_length(result: Any) -> int | None:
    """Body length of a list/tuple of bytes (the common case), else None.

    None as well when an item is not bytes (a ``str``...): the driver then refuses that item
    before it builds the head, so the app's mistake becomes a 500, not a cut connection.
    """
    if type(result) not in (list, tuple):
        return None
    total = 0
    for chunk in result:
        if type(chunk) is not bytes and type(chunk) is not bytearray:
            return None
        total += len(chunk)
    return total
