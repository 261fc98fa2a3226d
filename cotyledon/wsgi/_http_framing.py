"""Strict decoding of a chunked request body (RFC 9112 §7.1).

Job: turn the bytes of a ``Transfer-Encoding: chunked`` body, as they arrive, into body pieces
and an end marker, refusing every ambiguity a smuggler could use: chunk sizes that are not plain
hexadecimal (no sign, ``0x``, ``_``, spaces), oversized size lines, chunk extensions with bare CR
or LF or bad syntax, chunk data not followed by exactly CRLF, bare LF line ends, trailer fields
that are not well formed, and a body cut short.

Must not: own the receive buffer's lifetime, know about sockets, time or logging.  llhttp
(httptools) parses the request head; bodies are ours, so that we always know exactly where a
request ends and never read the next pipelined request as part of this one.
"""

from __future__ import annotations

import re

from cotyledon.wsgi._http_events import FIELD_VALUE_RE, TOKEN_RE, RemoteProtocolError

__all__ = ["END", "ChunkedReader"]

# RFC 9112 §7.1: chunk-size = 1*HEXDIG; we cap it at 16 digits (2**64 - 1) so that a huge
# size is refused before int() sees it (and int() only ever sees [0-9A-Fa-f]).
# RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*)"
    % (_TOKEN, _TOKEN, _QUOTED)
)
#: Longest chunk-size line (size and extensions) we accept.  Extensions carry no meaning for
#: us; a long line is an abuse (CVE-2025-22871 class) and is refused.
MAX_CHUNK_LINE = 4096
# Trailer fields are read, checked and dropped: the app never sees them (PEP 3333 has no
# place for them), so most fields are harmless there.  Refused (RFC 9110 §6.5.1) are those
# that would change how this message or the connection is framed or routed if anything
# between the client and us merged trailers into the header section: framing, routing,
# and the hop-by-hop connection fields.
_FORBIDDEN_TRAILERS = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"host",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"te",
    )
)

_SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)


class _End:
    """Marker returned once the whole chunked body (with its trailer section) was read."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = _End()


class ChunkedReader:
    """Incremental, strict chunked body decoder.

    :param max_body_size: refuse (413) a body whose de-chunked size would exceed this, as soon
        as a chunk size says so; ``None`` for no limit.
    :param max_trailer_size: total bytes allowed in the trailer section (431 beyond).
    :param max_trailer_count: trailer fields allowed (431 beyond).
    """

    __slots__ = (
        "_max_body",
        "_max_trailer_count",
        "_max_trailer_size",
        "_remaining",
        "_state",
        "_total",
        "_trailer_bytes",
        "_trailer_count",
    )

    def __init__(
        self, max_body_size: int | None, max_trailer_size: int, max_trailer_count: int
    ) -> None:
        self._max_body = max_body_size
        self._max_trailer_size = max_trailer_size
        self._max_trailer_count = max_trailer_count
        self._state = _SIZE
        self._remaining = 0
        self._total = 0
        self._trailer_bytes = 0
        self._trailer_count = 0

    @property
    def started(self) -> bool:
        """True once any byte of the body was consumed."""
        return self._total > 0 or self._state != _SIZE

    def next(self, buf: bytearray, eof: bool) -> bytes | _End | None:
        """Consume bytes from the front of ``buf``.

        :returns: a non-empty piece of body data, ``END`` when the body (and trailers) are
            complete, or ``None`` when more bytes are needed.
        :raises RemoteProtocolError: on any framing error, or when ``eof`` is true and the body
            is not complete.
        """
        while True:
            state = self._state
            if state == _DATA:
                return self._read_data(buf, eof)
            if state == _DONE:
                return END
            if state == _SIZE:
                progressed = self._read_size_line(buf)
            elif state == _DATA_END:
                progressed = self._read_data_end(buf)
            else:
                progressed = self._read_trailer_line(buf)
            if not progressed:
                if eof:
                    raise RemoteProtocolError(
                        "connection closed before the chunked body was complete"
                    )
                return None

    def _read_data(self, buf: bytearray, eof: bool) -> bytes | None:
        if not buf:
            if eof:
                raise RemoteProtocolError("connection closed before the chunked body was complete")
            return None
        n = min(len(buf), self._remaining)
        if n == len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._remaining -= n
        if not self._remaining:
            self._state = _DATA_END
        return data

    def _read_data_end(self, buf: bytearray) -> bool:
        # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; exactly CRLF
        # (h11 CVE-2025-43859 accepted any two bytes here).
        if buf[:2] == b"\r\n":
            del buf[:2]
            self._state = _SIZE
            return True
        if len(buf) < 2 and (not buf or buf[0] == 0x0D):
            return False
        raise RemoteProtocolError("chunk data not followed by CRLF")

    def _take_line(self, buf: bytearray, limit: int, what: str, status: int = 400) -> bytes | None:
        """Remove and return one CRLF-terminated line (without CRLF), or None if incomplete."""
        end = buf.find(b"\r\n", 0, limit + 2)
        if end < 0:
            if buf.find(b"\n", 0, limit + 2) >= 0:
                raise RemoteProtocolError(f"bare LF in {what}")
            if len(buf) > limit + 1 or (len(buf) == limit + 1 and buf[-1] != 0x0D):
                raise RemoteProtocolError(f"{what} too long", status)
            return None
        line = bytes(buf[:end])
        del buf[: end + 2]
        return line

    def _read_size_line(self, buf: bytearray) -> bool:
        line = self._take_line(buf, MAX_CHUNK_LINE, "chunk size line")
        if line is None:
            return False
        match = _CHUNK_LINE_RE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError("invalid chunk size line")
        size = int(match.group(1), 16)
        if size == 0:
            self._state = _TRAILERS
            return True
        self._total += size
        if self._max_body is not None and self._total > self._max_body:
            raise RemoteProtocolError("request body too large", 413)
        self._remaining = size
        self._state = _DATA
        return True

    def _read_trailer_line(self, buf: bytearray) -> bool:
        budget = self._max_trailer_size - self._trailer_bytes
        line = self._take_line(buf, max(budget, 0), "trailer section", 431)
        if line is None:
            return False
        if not line:
            self._state = _DONE
            return True
        self._trailer_bytes += len(line) + 2
        self._trailer_count += 1
        if self._trailer_count > self._max_trailer_count:
            raise RemoteProtocolError("too many trailer fields", 431)
        name, colon, value = line.partition(b":")
        if not colon or TOKEN_RE.fullmatch(name) is None:
            raise RemoteProtocolError("invalid trailer field")
        if FIELD_VALUE_RE.fullmatch(value.strip(b" \t")) is None:
            raise RemoteProtocolError("invalid trailer field value")
        if name.lower() in _FORBIDDEN_TRAILERS:
            raise RemoteProtocolError("forbidden field in trailer section")
        return True
