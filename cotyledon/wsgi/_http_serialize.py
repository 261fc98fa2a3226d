"""Response heads as bytes: status lines and the application's validated header lines.

Job: turn a status, a reason and the application's headers into field lines, refusing what
would split a response (CR, LF, NUL...) or break our framing (PEP 3333 hop-by-hop headers),
and report the framing the application asked for (Content-Length, chunked, close).

Must not: choose the framing or track connection state (``_http_protocol`` does); touch
sockets, time or logging.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from cotyledon.wsgi._http_events import FIELD_VALUE_RE, TOKEN_RE, LocalProtocolError
from cotyledon.wsgi._http_head import connection_tokens

__all__ = ["STATUS_LINES", "add_headers", "status_line"]

# Response headers the application may not send (PEP 3333 hop-by-hop): Connection, Keep-Alive
# and Transfer-Encoding are consumed (a "close" and a "chunked" are honoured); the others are
# refused.
_R_CL, _R_TE, _R_CONNECTION, _R_DROP, _R_REFUSE = range(5)
_RESPONSE_SPECIAL = {
    b"content-length": _R_CL,
    b"transfer-encoding": _R_TE,
    b"connection": _R_CONNECTION,
    b"keep-alive": _R_DROP,
    b"upgrade": _R_REFUSE,
    b"te": _R_REFUSE,
    b"trailer": _R_REFUSE,
    b"proxy-connection": _R_REFUSE,
}

_DIGITS_RE = re.compile(rb"[0-9]{1,18}")
_REASON_RE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")

STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii")) for s in HTTPStatus
}


# (name, value) -> (field line, kind, Content-Length or 0) for headers already validated: most
# response headers repeat (Content-Type, Server, a Date per second), so most requests validate
# nothing.
_HEADER_CACHE: dict[tuple[bytes, bytes], tuple[bytes, int | None, int]] = {}
_HEADER_CACHE_SIZE = 256  # small: Date and Content-Length values churn it anyway


def _header_line(header: tuple[bytes, bytes]) -> tuple[bytes, int | None, int]:
    """Validate one application header; return its field line, what it means to us and, for
    a Content-Length, its value."""
    name, value = header
    if type(name) is not bytes or type(value) is not bytes:
        raise LocalProtocolError("response header names and values must be bytes")
    # RFC 9110 §5.5: no whitespace around a field value; trim it rather than fail the response
    value = value.strip(b" \t")
    if TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid response header name {name!r}")
    if FIELD_VALUE_RE.fullmatch(value) is None:
        raise LocalProtocolError(f"invalid value for response header {name!r}")
    kind = _RESPONSE_SPECIAL.get(name.lower())
    if kind == _R_CL and _DIGITS_RE.fullmatch(value) is None:
        raise LocalProtocolError("invalid Content-Length")
    if kind == _R_TE and value.lower() != b"chunked":
        raise LocalProtocolError("only the chunked transfer coding is supported")
    if kind == _R_REFUSE:
        raise LocalProtocolError(f"hop-by-hop header {name!r} is not allowed")
    length = int(value) if kind == _R_CL else 0
    return b"%s: %s\r\n" % (name, value), kind, length


def status_line(status: int, reason: bytes | None) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and CRLF; the standard phrase when ``reason`` is None.

    :raises LocalProtocolError: the reason holds CR, LF or another control byte.
    """
    if reason is None:
        line = STATUS_LINES.get(status)
        if line is not None:
            return line
        reason = b""
    elif _REASON_RE.fullmatch(reason) is None:
        raise LocalProtocolError("invalid reason phrase")
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def add_headers(
    parts: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int | None, bool, bool]:
    """Append the field line of each application header to ``parts``.

    :returns: ``(content_length, chunked, close)``: the Content-Length it gave (or None),
        whether it asked for chunked framing, and whether its Connection field says close.
    :raises LocalProtocolError: an invalid or refused header (see the module docstring).
    """
    length: int | None = None
    chunked = False
    close = False
    cache = _HEADER_CACHE
    for header in headers:
        try:
            line, kind, value = cache[header]
        except KeyError:
            line, kind, value = entry = _header_line(header)
            if len(cache) >= _HEADER_CACHE_SIZE:
                cache.clear()
            cache[header] = entry
        except TypeError:
            raise LocalProtocolError("response headers must be (bytes, bytes) tuples") from None
        if kind is None:
            parts.append(line)
        elif kind == _R_CL:
            if length is not None:
                raise LocalProtocolError("repeated Content-Length")
            length = value
            parts.append(line)
        elif kind == _R_TE:
            chunked = True
        elif kind == _R_CONNECTION:
            close = close or b"close" in connection_tokens(header[1])
    return length, chunked, close
