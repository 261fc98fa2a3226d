"""Sans-IO HTTP/1.1, server side: bytes in, events out; responses in, bytes out.

Job: read requests from the bytes a client sent (the head through httptools/llhttp, then our own
semantic checks; bodies through our own strict framing), one request at a time, and frame the
responses (Content-Length, chunked, close-delimited; HEAD, 1xx, 204, 304; Connection rules;
100-continue), so that the driver (``_connection``) only moves bytes.  The rules and their RFC
sections are listed in ``doc/source/http.rst``.

Must not: touch sockets, files, ``os``, ``time`` or ``logging``; build the WSGI environ; add Date
or Server headers (the caller does, with a Date cached per second).

Rule: any error leaves the connection in ``State.ERROR``; it can only be closed.  A request is
never parsed while the previous response is unfinished (``PAUSED``), so a request can never be
read as two, nor two as one.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from http import HTTPStatus
from typing import Literal

import httptools

from cotyledon.wsgi._http_events import (
    END_OF_MESSAGE,
    FIELD_VALUE_RE,
    NEED_DATA,
    PAUSED,
    TOKEN_RE,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HTTPError,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Sentinel,
    trusted_request,
)
from cotyledon.wsgi._http_framing import END, ChunkedReader

__all__ = ["Event", "Limits", "ServerConnection", "State"]

Event = (
    Request | Data | EndOfMessage | ConnectionClosed | Literal[Sentinel.NEED_DATA, Sentinel.PAUSED]
)


class State(enum.Enum):
    """Where each side of the connection stands (names after h11).

    The client side (``their_state``): ``IDLE`` (waiting for a request head), ``SEND_BODY``
    (the request body is being read), ``DONE`` (the request was read entirely), ``CLOSED`` (the
    peer closed between requests), ``ERROR``.  Our side (``our_state``): ``IDLE`` (no response
    started), ``SEND_BODY`` (head sent, body being sent), ``DONE`` (response complete, the
    connection may be reused), ``MUST_CLOSE`` (response complete, close now), ``ERROR``.
    """

    IDLE = "IDLE"
    SEND_BODY = "SEND_BODY"
    DONE = "DONE"
    MUST_CLOSE = "MUST_CLOSE"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


_IDLE = State.IDLE
_SEND_BODY = State.SEND_BODY
_DONE = State.DONE
_MUST_CLOSE = State.MUST_CLOSE
_CLOSED = State.CLOSED
_ERROR = State.ERROR


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits for what a client may send; each refusal names its status.

    :param max_request_line: bytes in the request line, CRLF excluded (414 beyond).  Same as
        Apache and gunicorn's hard maximum (8190).
    :param max_header_count: header fields in a request, or fields in a trailer section
        (431 beyond).  Same as gunicorn and Apache (100).
    :param max_header_size: bytes of one field line, ``name: value`` (431 beyond).
    :param max_head_size: bytes of the whole head: request line and fields (431 beyond); also
        the budget of a trailer section.  64 KiB, four times h11's 16 KiB, as nginx's default
        ``large_client_header_buffers 4 8k`` plus room.
    :param max_body_size: bytes of a request body (413 beyond, refused as soon as
        ``Content-Length`` or a chunk size says so); ``None`` for no limit.
    """

    max_request_line: int = 8190
    max_header_count: int = 100
    max_header_size: int = 8190
    max_head_size: int = 65536
    max_body_size: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "max_body_size":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                what = "an int >= 1 or None" if field.name == "max_body_size" else "an int >= 1"
                msg = f"'{field.name}' must be {what}, not: {value!r} ({type(value).__name__})"
                raise ValueError(msg)


# Header names we must look at, request side.
_H_HOST, _H_CL, _H_TE, _H_CONNECTION, _H_EXPECT, _H_CTYPE = range(6)
_REQUEST_SPECIAL = {
    b"host": _H_HOST,
    b"content-length": _H_CL,
    b"transfer-encoding": _H_TE,
    b"connection": _H_CONNECTION,
    b"expect": _H_EXPECT,
    b"content-type": _H_CTYPE,
}
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
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]
_HOST_RE = re.compile(
    rb"(?:\[[0-9A-Za-z:.\-_~!$&'()*+,;=%]+\]|[0-9A-Za-z.\-_~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
# RFC 3986 §3.1: scheme ":" "//" authority ... (absolute-form, RFC 9112 §3.2.2)
_ABSOLUTE_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]+(?:[/?#].*)?")
_REASON_RE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")

# Body framings, both directions.
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("ascii")) for s in HTTPStatus
}


def _status_line(status: int, reason: bytes | None) -> bytes:
    if reason is None:
        line = _STATUS_LINES.get(status)
        if line is not None:
            return line
        reason = b""
    elif _REASON_RE.fullmatch(reason) is None:
        raise LocalProtocolError("invalid reason phrase")
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def _connection_tokens(value: bytes) -> list[bytes]:
    return [token.strip(b" \t").lower() for token in value.split(b",")]


class ServerConnection:
    """One HTTP/1.1 connection, server side, without I/O.

    Feed it what the socket gave with ``receive_data()``; ask ``next_event()`` for what it
    means; send what ``send_response()``, ``send_data()``, ``send_end()`` (or
    ``error_response()``) return; call ``start_next_cycle()`` between two requests of a
    keep-alive connection.

    :param limits: the request size limits.
    :param keep_alive: False to answer every request with ``Connection: close``.
    """

    def __init__(self, limits: Limits = Limits(), keep_alive: bool = True) -> None:  # noqa: B008
        self._limits = limits
        self._server_keep_alive = keep_alive
        self._buf = bytearray()
        self._eof = False
        self.their_state = _IDLE
        self.our_state = _IDLE
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._request: Request | None = None
        self._must_close = not self._server_keep_alive
        self._continue_sent = False
        self._body_started = False
        self._body_mode = _NO_BODY
        self._body_remaining = 0
        self._chunked: ChunkedReader | None = None
        self._resp_mode = _NO_BODY
        self._resp_remaining = 0
        self._resp_strict_empty = False
        # head parsing
        self._parser: httptools.HttpRequestParser | None = None
        self._head_fed = 0
        self._line_checked = False
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer; ``b""`` means the peer closed (EOF).

        :raises LocalProtocolError: data given after EOF.
        """
        if data:
            if self._eof:
                raise LocalProtocolError("received data after EOF")
            self._buf += data
        else:
            self._eof = True

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received and not yet consumed, and whether EOF was seen."""
        return bytes(self._buf), self._eof

    def next_event(self) -> Event:
        """Return the next event the received bytes make, or ``NEED_DATA`` / ``PAUSED``.

        Events come in this order per request: ``Request``, zero or more ``Data``,
        ``EndOfMessage``; then ``PAUSED`` until the response is finished and
        ``start_next_cycle()`` was called.  ``ConnectionClosed`` when the peer closed between
        requests.

        :raises RemoteProtocolError: the peer sent something we refuse; answer with
            ``error_response()`` and close.  The connection is then in ``State.ERROR``.
        """
        state = self.their_state
        try:
            if state is _IDLE:
                return self._next_head()
            if state is _SEND_BODY:
                return self._next_body()
        except HTTPError:
            self._to_error()
            raise
        if state is _DONE:
            return PAUSED
        if state is _CLOSED:
            return ConnectionClosed()
        raise RemoteProtocolError("the connection is in the ERROR state")

    def _to_error(self) -> None:
        self.their_state = _ERROR
        self._must_close = True
        self._parser = None

    # head

    def _next_head(self) -> Event:
        buf = self._buf
        if not self._head_fed:
            # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
            # request-line (some clients send a CRLF after a POST body).
            while buf[:2] == b"\r\n":
                del buf[:2]
            if not buf or buf == b"\r":
                if self._eof:
                    if buf:
                        raise RemoteProtocolError("incomplete request head")
                    self.their_state = _CLOSED
                    return ConnectionClosed()
                return NEED_DATA
        limits = self._limits
        end = buf.find(b"\r\n\r\n", self._head_fed - 3 if self._head_fed > 3 else 0)
        if end < 0:
            self._check_request_line(buf)
            if len(buf) > limits.max_head_size:
                raise RemoteProtocolError("request header section too large", 431)
            self._feed(buf, len(buf))
            if self._eof:
                raise RemoteProtocolError("incomplete request head")
            return NEED_DATA
        head_len = end + 4
        if head_len > limits.max_head_size:
            raise RemoteProtocolError("request header section too large", 431)
        self._check_request_line(buf)
        self._feed(buf, head_len)
        if not self._head_done:
            raise RemoteProtocolError("malformed request head")
        line_end = buf.find(b"\r\n")
        request_line = bytes(buf[:line_end])
        if head_len == len(buf):
            buf.clear()
        else:
            del buf[:head_len]
        self._head_fed = 0
        return self._build_request(request_line)

    def _check_request_line(self, buf: bytearray) -> None:
        if self._line_checked:
            return
        limit = self._limits.max_request_line
        line_end = buf.find(b"\r\n", 0, limit + 2)
        if line_end < 0:
            if len(buf) > limit:
                raise RemoteProtocolError("request line too long", 414)
            return
        self._line_checked = True

    def _feed(self, buf: bytearray, upto: int) -> None:
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpRequestParser(self)
        start = self._head_fed
        if start == upto:
            return
        chunk = buf if start == 0 and upto == len(buf) else buf[start:upto]
        self._head_fed = upto
        try:
            parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade header: llhttp stops after the head, which is all we fed.
            pass
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HTTPError):
                raise exc.__context__ from None
            raise RemoteProtocolError("malformed request") from exc
        except httptools.HttpParserInvalidMethodError:
            method = bytes(buf[: buf.find(b" ")]) if b" " in buf else b""
            if TOKEN_RE.fullmatch(method) is not None:
                raise RemoteProtocolError("method not implemented", 501) from None
            raise RemoteProtocolError("invalid method") from None
        except httptools.HttpParserError as exc:
            reason = str(exc)
            if reason == "Invalid HTTP version":
                raise RemoteProtocolError("HTTP version not supported", 505) from None
            raise RemoteProtocolError(f"malformed request: {reason}") from None

    # httptools callbacks (only while the head is fed)

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self._limits
        if len(name) + len(value) + 2 > limits.max_header_size:
            raise RemoteProtocolError("request header field too large", 431)
        headers = self._headers
        if len(headers) >= limits.max_header_count:
            raise RemoteProtocolError("too many request header fields", 431)
        # llhttp strips leading whitespace only (RFC 9112 §5: OWS on both sides).
        headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        self._head_done = True

    def _build_request(self, request_line: bytes) -> Request:
        parser = self._parser
        assert parser is not None
        self._parser = None
        version = parser.get_http_version().encode("ascii")
        method: bytes = parser.get_method()
        target = self._target
        if version != b"1.1" and version != b"1.0":
            raise RemoteProtocolError("HTTP version not supported", 505)
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single SPs.
        if request_line != b"%s %s HTTP/%s" % (method, target, version):
            raise RemoteProtocolError("malformed request line")
        self._check_target(method, target)
        headers = tuple(self._headers)
        keep_alive, expect_continue = self._check_headers(version, headers)
        request = trusted_request(method, target, version, headers, keep_alive, expect_continue)
        self._request = request
        if not keep_alive:
            self._must_close = True
        self.their_state = _SEND_BODY
        return request

    def _check_target(self, method: bytes, target: bytes) -> None:
        # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT), asterisk-form
        # (OPTIONS).  llhttp already refused CTLs, SP and non-ASCII bytes.
        if target[:1] == b"/":
            return
        if method == b"CONNECT":
            raise RemoteProtocolError("CONNECT is not supported", 501)
        if target == b"*":
            if method != b"OPTIONS":
                raise RemoteProtocolError("asterisk-form request target is only for OPTIONS")
            return
        if _ABSOLUTE_RE.fullmatch(target) is None:
            raise RemoteProtocolError("invalid request target")

    def _check_headers(
        self, version: bytes, headers: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[bool, bool]:
        hosts = 0
        content_length: bytes | None = None
        te: list[bytes] = []
        content_types = 0
        close = False
        keep_alive_token = False
        expect_continue = False
        special = _REQUEST_SPECIAL
        for name, value in headers:
            kind = special.get(name)
            if kind is None:
                continue
            if kind == _H_HOST:
                hosts += 1
                if _HOST_RE.fullmatch(value) is None:
                    raise RemoteProtocolError("invalid Host header")
            elif kind == _H_CL:
                if content_length is not None:
                    raise RemoteProtocolError("repeated Content-Length")
                if _DIGITS_RE.fullmatch(value) is None:
                    raise RemoteProtocolError("invalid Content-Length")
                content_length = value
            elif kind == _H_TE:
                te.append(value)
            elif kind == _H_CONNECTION:
                tokens = _connection_tokens(value)
                close = close or b"close" in tokens
                keep_alive_token = keep_alive_token or b"keep-alive" in tokens
            elif kind == _H_EXPECT:
                expect_continue = value.lower() == b"100-continue"
            else:
                content_types += 1
        if version == b"1.1":
            if hosts != 1:
                raise RemoteProtocolError("missing or repeated Host header")
            keep_alive = not close
        else:
            if hosts > 1:
                raise RemoteProtocolError("repeated Host header")
            keep_alive = keep_alive_token and not close
            expect_continue = False
        if content_types > 1:
            raise RemoteProtocolError("repeated Content-Type header")
        if te:
            if version != b"1.1":
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if content_length is not None:
                raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
            self._check_transfer_encoding(te)
            self._body_mode = _CHUNKED
            limits = self._limits
            self._chunked = ChunkedReader(
                limits.max_body_size, limits.max_head_size, limits.max_header_count
            )
        elif content_length is not None:
            length = int(content_length)
            max_body = self._limits.max_body_size
            if max_body is not None and length > max_body:
                raise RemoteProtocolError("request body too large", 413)
            self._body_mode = _LENGTH
            self._body_remaining = length
        return keep_alive, expect_continue

    @staticmethod
    def _check_transfer_encoding(values: list[bytes]) -> None:
        # RFC 9112 §6.1 and §6.3: chunked must be the final coding, once; we implement no
        # other transfer coding (RFC 9112 §6.1: 501 for an unknown one).
        codings = [c.strip(b" \t").lower() for c in b",".join(values).split(b",")]
        if codings == [b"chunked"]:
            return
        if any(TOKEN_RE.fullmatch(c) is None for c in codings):
            raise RemoteProtocolError("invalid Transfer-Encoding")
        if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            raise RemoteProtocolError("chunked must be the final transfer coding, once")
        raise RemoteProtocolError("transfer coding not implemented", 501)

    # body

    def _next_body(self) -> Event:
        mode = self._body_mode
        if mode == _LENGTH:
            remaining = self._body_remaining
            if not remaining:
                self.their_state = _DONE
                return END_OF_MESSAGE
            buf = self._buf
            if not buf:
                if self._eof:
                    raise RemoteProtocolError("connection closed before the body was complete")
                return NEED_DATA
            self._body_started = True
            if len(buf) <= remaining:
                data = bytes(buf)
                buf.clear()
            else:
                data = bytes(buf[:remaining])
                del buf[:remaining]
            self._body_remaining = remaining - len(data)
            return Data(data)
        if mode == _CHUNKED:
            reader = self._chunked
            assert reader is not None
            piece = reader.next(self._buf, self._eof)
            self._body_started = reader.started
            if piece is None:
                return NEED_DATA
            if piece is END:
                self.their_state = _DONE
                return END_OF_MESSAGE
            assert isinstance(piece, bytes)
            return Data(piece)
        self.their_state = _DONE
        return END_OF_MESSAGE

    # -- sending -------------------------------------------------------------------------

    def send_continue(self) -> bytes:
        """Return ``HTTP/1.1 100 Continue`` once, when it is due, else ``b""``.

        Due when the request (HTTP/1.1) has ``Expect: 100-continue``, its body is still to
        be read, no body byte arrived yet, and no response started (RFC 9110 §10.1.1).  Call it
        when the application first reads the body.
        """
        request = self._request
        if (
            request is None
            or not request.expect_continue
            or self._continue_sent
            or self._body_started
            or self.our_state is not _IDLE
            or self.their_state is not _SEND_BODY
        ):
            return b""
        self._continue_sent = True
        return _CONTINUE

    def send_response(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes | None = None
    ) -> bytes:
        """Return the bytes of a response head, choosing the body framing.

        Framing: no body for a HEAD request, 1xx, 204 and 304; identity when the application
        gave a ``Content-Length`` (validated); otherwise chunked for HTTP/1.1 and
        close-delimited for HTTP/1.0.  ``Connection: close`` is added when this is the last
        response on the connection, ``Connection: keep-alive`` for an HTTP/1.0 client that
        asked for it.  Hop-by-hop headers from the application (PEP 3333): ``Connection`` is
        consumed (its ``close`` honoured), ``Keep-Alive`` dropped, ``Transfer-Encoding:
        chunked`` consumed (we chunk when needed); ``Upgrade``, ``TE``, ``Trailer``,
        ``Proxy-Connection`` and other transfer codings are refused.  Date and Server are the
        caller's job.

        A 1xx other than 101 is informational: its head is returned and the final response is
        still to come.

        :raises LocalProtocolError: no request to answer, a response already started, an
            invalid status, reason, header name or value (CR, LF, NUL...), or a refused header.
        """
        request = self._request
        if request is None or self.their_state is _IDLE:
            raise self._local_error("no request to respond to")
        if self.our_state is not _IDLE:
            raise self._local_error("a response was already started")
        if type(status) is not int or not 100 <= status <= 999:
            raise self._local_error(f"invalid status code {status!r}")
        try:
            return self._response_head(request, status, headers, reason)
        except LocalProtocolError:
            self._to_error_local()
            raise

    def _response_head(
        self,
        request: Request,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: bytes | None,
    ) -> bytes:
        if status < 200:
            if status == 101:
                raise LocalProtocolError("switching protocols is not supported")
            if status == 100:
                self._continue_sent = True
            parts = [_status_line(status, reason)]
            self._add_headers(parts, headers)
            parts.append(b"\r\n")
            return b"".join(parts)
        parts = [_status_line(status, reason)]
        length, app_chunked, app_close = self._add_headers(parts, headers)
        if status == 204:
            mode = _NO_BODY
            if length is not None:
                # RFC 9110 §8.6: no Content-Length in a 204; drop the application's.
                parts = [p for p in parts if not p.lower().startswith(b"content-length:")]
        elif status == 304 or request.method == b"HEAD":
            mode = _NO_BODY
            if length is None and app_chunked and request.http_version == b"1.1":
                parts.append(b"Transfer-Encoding: chunked\r\n")
        elif length is not None:
            if app_chunked:
                raise LocalProtocolError("both Content-Length and Transfer-Encoding")
            mode = _LENGTH
            self._resp_remaining = length
        elif request.http_version == b"1.1":
            mode = _CHUNKED
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            mode = _UNTIL_CLOSE
        self._resp_mode = mode
        self._resp_strict_empty = status in (204, 304)
        close = (
            self._must_close
            or app_close
            or mode == _UNTIL_CLOSE
            or (
                request.expect_continue
                and not self._continue_sent
                and self.their_state is not _DONE
            )
        )
        if close:
            self._must_close = True
            parts.append(b"Connection: close\r\n\r\n")
        elif request.http_version == b"1.0":
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        self.our_state = _SEND_BODY
        return b"".join(parts)

    def _add_headers(
        self, parts: list[bytes], headers: list[tuple[bytes, bytes]]
    ) -> tuple[int | None, bool, bool]:
        """Validate the application's headers into ``parts``; return its framing wishes."""
        length: int | None = None
        chunked = False
        close = False
        special = _RESPONSE_SPECIAL
        token_match = TOKEN_RE.fullmatch
        value_match = FIELD_VALUE_RE.fullmatch
        for name, value in headers:
            if token_match(name) is None:
                raise LocalProtocolError(f"invalid response header name {name!r}")
            if value_match(value) is None:
                raise LocalProtocolError(f"invalid value for response header {name!r}")
            kind = special.get(name.lower())
            if kind is None:
                parts.append(b"%s: %s\r\n" % (name, value))
            elif kind == _R_CL:
                if length is not None or _DIGITS_RE.fullmatch(value) is None:
                    raise LocalProtocolError("invalid or repeated Content-Length")
                length = int(value)
                parts.append(b"%s: %s\r\n" % (name, value))
            elif kind == _R_TE:
                if value.lower() != b"chunked":
                    raise LocalProtocolError("only the chunked transfer coding is supported")
                chunked = True
            elif kind == _R_CONNECTION:
                close = close or b"close" in _connection_tokens(value)
            elif kind == _R_REFUSE:
                raise LocalProtocolError(f"hop-by-hop header {name!r} is not allowed")
        return length, chunked, close

    def send_data(self, data: bytes) -> bytes:
        """Return the bytes that carry ``data`` as (part of) the response body.

        Chunk-framed when chunked (``b""`` for empty data: an empty chunk would end the body);
        ``b""`` for a HEAD request.

        :raises LocalProtocolError: no response head sent, more bytes than the announced
            ``Content-Length``, or a body on a 204/304.
        """
        if self.our_state is not _SEND_BODY:
            raise self._local_error("no response body is being sent")
        mode = self._resp_mode
        if mode == _CHUNKED:
            if not data:
                return b""
            return b"%x\r\n%s\r\n" % (len(data), data)
        if mode == _LENGTH:
            remaining = self._resp_remaining - len(data)
            if remaining < 0:
                raise self._local_error("response body longer than its Content-Length")
            self._resp_remaining = remaining
            return data
        if mode == _UNTIL_CLOSE:
            return data
        if data and self._resp_strict_empty:
            raise self._local_error("a 204 or 304 response has no body")
        return b""

    def send_end(self) -> bytes:
        """Return the bytes that end the response body (the last chunk when chunked).

        :raises LocalProtocolError: no response head sent, or fewer bytes than the announced
            ``Content-Length``.
        """
        if self.our_state is not _SEND_BODY:
            raise self._local_error("no response body is being sent")
        mode = self._resp_mode
        if mode == _LENGTH and self._resp_remaining:
            raise self._local_error("response body shorter than its Content-Length")
        self.our_state = _MUST_CLOSE if self._must_close else _DONE
        if mode == _CHUNKED:
            return b"0\r\n\r\n"
        return b""

    def error_response(
        self, exc: HTTPError, headers: list[tuple[bytes, bytes]] | None = None
    ) -> bytes:
        """Return a complete small response for ``exc`` (text body, ``Connection: close``).

        Returns ``b""`` when a response was already started (the connection can only be
        closed then).  After this the connection is in ``State.ERROR``.

        :param headers: extra headers (Date, Server), validated like the application's.
        """
        started = self.our_state is not _IDLE
        self.their_state = _ERROR
        self.our_state = _ERROR
        if started:
            return b""
        status = exc.status_hint if 400 <= exc.status_hint <= 599 else 500
        line = _STATUS_LINES.get(status) or _status_line(status, b"Error")
        body = line[13:].rstrip(b"\r\n") + b"\n"
        if isinstance(exc, RemoteProtocolError):
            # Our reasons never echo request bytes, so they are safe to show.
            body += exc.reason.encode("ascii", "replace") + b"\n"
        parts = [line]
        if headers:
            self._add_headers(parts, headers)
        parts.append(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        return b"".join(parts)

    def _local_error(self, reason: str) -> LocalProtocolError:
        self._to_error_local()
        return LocalProtocolError(reason)

    def _to_error_local(self) -> None:
        self.our_state = _ERROR
        self._must_close = True

    # -- cycle ---------------------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        """May the connection be reused after the current response?

        False once anything asked to close (the client, the application, the server via
        ``disable_keep_alive()``, an HTTP/1.0 exchange without keep-alive, a close-delimited
        body, an error), and while the request body was not read to its end (drain it with
        ``next_event()`` to make this True again).
        """
        return not self._must_close and self.their_state is _DONE and self.our_state is not _ERROR

    def disable_keep_alive(self) -> None:
        """Make the current (or next) response the last one: server draining, --no-keepalive."""
        self._server_keep_alive = False
        self._must_close = True
        if self.our_state is _DONE:
            self.our_state = _MUST_CLOSE

    def start_next_cycle(self) -> None:
        """Get ready for the next request of a keep-alive connection.

        Call after ``EndOfMessage`` was read and ``send_end()`` returned, when ``keep_alive``
        is true.  Pipelined bytes already received are parsed by the next ``next_event()``.

        :raises LocalProtocolError: the exchange is not finished or the connection must close.
        """
        if self.their_state is not _DONE or self.our_state is not _DONE or self._must_close:
            raise LocalProtocolError(
                f"not ready for a new request (client {self.their_state.value}, "
                f"server {self.our_state.value})"
            )
        self.their_state = _IDLE
        self.our_state = _IDLE
        self._reset_cycle()
