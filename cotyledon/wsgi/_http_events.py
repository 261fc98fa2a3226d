"""The vocabulary of the sans-IO HTTP/1.1 layer: events, sentinels and errors.

Job: define the immutable values that ``_http_protocol.ServerConnection`` hands to its driver
(``Request``, ``Data``, ``EndOfMessage``, ``ConnectionClosed``, ``NEED_DATA``, ``PAUSED``) and the
error hierarchy that says whose fault a failure is (``RemoteProtocolError``: the peer misbehaved;
``LocalProtocolError``: we misused the API), each with the HTTP status to answer with.

Must not: parse, frame, or know about sockets, time or logging.  The events validate their own
fields, so an invalid request cannot exist; the protocol builds them from bytes it has already
checked.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Literal

__all__ = [
    "END_OF_MESSAGE",
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "HTTPError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Sentinel",
]

# RFC 9110 §5.6.2: token = 1*tchar
TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value = *field-content; field-vchar = VCHAR / obs-text, with SP / HTAB
# inside.  We keep obs-text (0x80-0xFF) as bytes, never CR, LF, NUL or other CTLs.
_VCHAR = rb"[\x21-\x7e\x80-\xff]"
FIELD_VALUE_RE = re.compile(rb"(?:%s(?:[ \t\x21-\x7e\x80-\xff]*%s)?)?" % (_VCHAR, _VCHAR))
# RFC 9112 §3.2: request-target is ASCII visible characters only (a URI form, no SP).
REQUEST_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
HTTP_VERSIONS = (b"1.0", b"1.1")


class Sentinel(enum.Enum):
    """Values ``next_event()`` returns when it has no event to give."""

    #: More bytes from the peer are needed before the next event.
    NEED_DATA = "NEED_DATA"
    #: A complete request was read and our response to it is not finished (or
    #: ``start_next_cycle()`` was not called yet): pipelined bytes wait in the buffer and are
    #: never parsed ahead as the next request.
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Literal[Sentinel.NEED_DATA] = Sentinel.NEED_DATA
PAUSED: Literal[Sentinel.PAUSED] = Sentinel.PAUSED


class HTTPError(Exception):
    """A failure of the HTTP layer.

    :param reason: a short human readable explanation (safe to show to the client: it never
        echoes request bytes).
    :param status_hint: the status code a server should answer with (400, 413, 414, 431, 501,
        505...).
    """

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status_hint={self.status_hint})"


class RemoteProtocolError(HTTPError):
    """The peer sent something we refuse.

    Answer with ``ServerConnection.error_response(exc)`` and close the connection: after this
    error the connection is in the ``ERROR`` state and can't be reused.
    """


class LocalProtocolError(HTTPError):
    """We (the server or the application) misused the protocol API.

    Examples: a body longer than the ``Content-Length`` it announced, a header value with CR/LF,
    sending a response twice.  The connection is in the ``ERROR`` state: close it.  Its
    ``status_hint`` is 500.
    """

    def __init__(self, reason: str, status_hint: int = 500) -> None:
        super().__init__(reason, status_hint)


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """The head of a request, validated.

    :param method: the method token, as received (case-sensitive, RFC 9110 §9.1).
    :param target: the request-target as received (origin-form ``/path?query``, absolute-form
        ``http://host/path``, or ``*`` for OPTIONS).
    :param http_version: ``b"1.0"`` or ``b"1.1"``.
    :param headers: ``(name, value)`` pairs in received order; names lower-cased, values
        stripped of surrounding whitespace.  Names containing ``_`` are KEPT here: the PEP 3333
        environ builder (``_environ``) drops them, because ``X-Foo_Bar`` and ``X-Foo-Bar``
        would both become ``HTTP_X_FOO_BAR``.
    :param keep_alive: the client allows the connection to be reused after this exchange.
    :param expect_continue: the client sent ``Expect: 100-continue`` (HTTP/1.1 only).
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool = True
    expect_continue: bool = False

    def __post_init__(self) -> None:
        if TOKEN_RE.fullmatch(self.method) is None:
            raise LocalProtocolError(f"invalid method {self.method!r}")
        if REQUEST_TARGET_RE.fullmatch(self.target) is None:
            raise LocalProtocolError(f"invalid request target {self.target!r}")
        if self.http_version not in HTTP_VERSIONS:
            raise LocalProtocolError(f"unsupported HTTP version {self.http_version!r}")
        for name, value in self.headers:
            if TOKEN_RE.fullmatch(name) is None or name != name.lower():
                raise LocalProtocolError(f"invalid header name {name!r}")
            if FIELD_VALUE_RE.fullmatch(value) is None:
                raise LocalProtocolError(f"invalid header value for {name!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Data:
    """A piece of the request body, already de-chunked."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request body is complete (trailers, if any, were checked and dropped)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side cleanly between requests."""


#: The one ``EndOfMessage`` the protocol hands out (it carries no data).
END_OF_MESSAGE = EndOfMessage()

_new = object.__new__
_set = object.__setattr__


def trusted_request(
    method: bytes,
    target: bytes,
    http_version: bytes,
    headers: tuple[tuple[bytes, bytes], ...],
    *,
    keep_alive: bool,
    expect_continue: bool,
) -> Request:
    """Build a ``Request`` from fields the protocol layer has already validated.

    The hot path: it skips the constructor's checks, which the parser made on the bytes.
    """
    request: Request = _new(Request)
    _set(request, "method", method)
    _set(request, "target", target)
    _set(request, "http_version", http_version)
    _set(request, "headers", headers)
    _set(request, "keep_alive", keep_alive)
    _set(request, "expect_continue", expect_continue)
    return request
