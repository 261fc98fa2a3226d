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

import enum
from typing import Literal

from cotyledon.wsgi._http_events import (
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HTTPError,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Sentinel,
)
from cotyledon.wsgi._http_framing import END, ChunkedReader
from cotyledon.wsgi._http_head import CHUNKED, HeadReader, Limits
from cotyledon.wsgi._http_serialize import STATUS_LINES, add_headers, status_line

__all__ = ["DEFAULT_LIMITS", "Event", "Limits", "ServerConnection", "State"]

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


# Body framings, both directions.
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)

DEFAULT_LIMITS = Limits()

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ServerConnection:
    """One HTTP/1.1 connection, server side, without I/O.

    Feed it what the socket gave with ``receive_data()``; ask ``next_event()`` for what it
    means; send what ``send_response()``, ``send_data()``, ``send_end()`` (or
    ``error_response()``) return; call ``start_next_cycle()`` between two requests of a
    keep-alive connection.

    :param limits: the request size limits.
    :param keep_alive: False to answer every request with ``Connection: close``.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, keep_alive: bool = True) -> None:
        self._limits = limits
        self._server_keep_alive = keep_alive
        self._buf = bytearray()
        self._eof = False
        self._head_reader = HeadReader(limits)
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
        self._head_sent = False  # a final response head was handed out

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

    # head

    def _next_head(self) -> Event:
        reader = self._head_reader
        event = reader.read(self._buf, self._eof)
        if event is None:
            return NEED_DATA
        if type(event) is ConnectionClosed:
            self.their_state = _CLOSED
            return event
        assert type(event) is Request
        self._request = event
        if not event.keep_alive:
            self._must_close = True
        length = reader.body_length
        if length == CHUNKED:
            limits = self._limits
            self._body_mode = _CHUNKED
            self._chunked = ChunkedReader(
                limits.max_body_size, limits.max_head_size, limits.max_header_count
            )
        elif length:
            self._body_mode = _LENGTH
            self._body_remaining = length
        self.their_state = _SEND_BODY
        return event

    # body

    def _next_body(self) -> Event:
        mode = self._body_mode
        if mode == _LENGTH:
            return self._next_length_body()
        if mode == _CHUNKED:
            return self._next_chunked_body()
        self.their_state = _DONE
        return END_OF_MESSAGE

    def _next_length_body(self) -> Event:
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

    def _next_chunked_body(self) -> Event:
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
        parts = [status_line(status, reason)]
        length, app_chunked, app_close = add_headers(parts, headers)
        if status < 200:
            return self._informational_head(status, parts)
        mode = self._choose_framing(request, status, parts, length, app_chunked)
        self._resp_mode = mode
        self._resp_strict_empty = status in (204, 304)
        close = (
            self._must_close
            or app_close
            or mode == _UNTIL_CLOSE
            # RFC 9110 §10.1.1: the client may never send the body it was waiting to send.
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
        self._head_sent = True
        return b"".join(parts)

    def _informational_head(self, status: int, parts: list[bytes]) -> bytes:
        if status == 101:
            raise LocalProtocolError("switching protocols is not supported")
        if status == 100:
            self._continue_sent = True
        parts.append(b"\r\n")
        return b"".join(parts)

    def _choose_framing(
        self,
        request: Request,
        status: int,
        parts: list[bytes],
        length: int | None,
        app_chunked: bool,
    ) -> int:
        """Return the response body framing; add its header to ``parts`` if needed."""
        if length is not None and app_chunked:
            raise LocalProtocolError("both Content-Length and Transfer-Encoding")
        if status == 204:
            if length is not None:
                # RFC 9110 §8.6: no Content-Length in a 204; drop the application's.
                parts[:] = [p for p in parts if not p.lower().startswith(b"content-length:")]
            return _NO_BODY
        if status == 304 or request.method == b"HEAD":
            # RFC 9110 §8.6, §9.3.2: keep the Content-Length a GET would have had.
            return _NO_BODY
        if length is not None:
            self._resp_remaining = length
            return _LENGTH
        if request.http_version == b"1.1":
            parts.append(b"Transfer-Encoding: chunked\r\n")
            return _CHUNKED
        return _UNTIL_CLOSE

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

    def send_data_parts(self, data: bytes) -> list[bytes]:
        """Like ``send_data()``, without copying ``data``: the buffers to send, in order.

        ``data`` itself is one of them, with the chunk framing (when chunked) as separate
        small buffers around it; ``[]`` when nothing is to be sent (empty data, a HEAD
        request).  For large bodies, sent with ``socket.sendmsg()`` or one send each.

        :raises LocalProtocolError: as ``send_data()``.
        """
        if self._resp_mode == _CHUNKED and self.our_state is _SEND_BODY:
            return [b"%x\r\n" % len(data), data, b"\r\n"] if data else []
        framed = self.send_data(data)
        return [framed] if framed else []

    def send_data_external(self, count: int) -> None:
        """Account for ``count`` body bytes the caller sent itself (``sendfile``).

        Only for identity (``Content-Length``) or close-delimited bodies.

        :raises LocalProtocolError: chunked framing, or more than the announced length.
        """
        if self.our_state is not _SEND_BODY:
            raise self._local_error("no response body is being sent")
        mode = self._resp_mode
        if mode == _LENGTH:
            if count > self._resp_remaining:
                raise self._local_error("response body longer than its Content-Length")
            self._resp_remaining -= count
        elif mode == _CHUNKED or (count and mode == _NO_BODY):
            raise self._local_error("body bytes sent outside a framing that allows them")

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
        self,
        exc: HTTPError,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        head_unsent: bool = False,
    ) -> bytes:
        """Return a complete small response for ``exc`` (text body, ``Connection: close``).

        Returns ``b""`` when a response head was already handed out (the connection can only
        be closed then); a refused ``send_response()`` handed nothing out, so this still
        answers.  After this the connection is in ``State.ERROR``.

        :param headers: extra headers (Date, Server), validated like the application's.
        :param head_unsent: the caller never sent a byte of the response it was building
            (the head handed out is dropped), so this still answers.
        """
        started = self._head_sent and not head_unsent
        self.their_state = _ERROR
        self.our_state = _ERROR
        if started:
            return b""
        status = exc.status_hint if 400 <= exc.status_hint <= 599 else 500
        line = STATUS_LINES.get(status) or status_line(status, b"Error")
        body = line[13:].rstrip(b"\r\n") + b"\n"
        if isinstance(exc, RemoteProtocolError):
            # Our reasons never echo request bytes, so they are safe to show.
            body += exc.reason.encode("ascii", "replace") + b"\n"
        parts = [line]
        if headers:
            add_headers(parts, headers)
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
