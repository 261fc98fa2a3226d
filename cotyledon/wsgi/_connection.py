"""Drive one client socket through the sans-IO protocol and the WSGI app.

A pool thread calls :meth:`RequestHandler.handle` when the worker's selector saw the socket
readable. It reads what is there (one ``recv``), feeds ``_http_protocol``, and for every
complete request head builds the environ, calls the app and writes the response (head and
small bodies in one ``send``; ``sendfile`` for ``wsgi.file_wrapper`` over a real file).
Pipelined requests already buffered are answered in order in the same call. It never waits
for a request head: an incomplete head goes back to the selector, which owns the head
deadline, so a slow client never holds a thread.

Nor does it wait for the first :data:`PREREAD_LIMIT` bytes of a request body: the request
is kept on the connection (:attr:`Connection.pending`) and the connection goes back to the
selector until its body is complete or that many bytes are buffered, then the app is
called. A client dripping its body costs a connection slot, not a thread; the selector
answers ``408`` when the body's deadline (``_body_deadline``) passes. A larger body is
streamed to the app, each read bounded by the same deadline. Requests that expect
``100 Continue`` go to the app at once: it decides whether it wants the body.

Must not: accept, select, or decide when idle connections expire (that is ``_worker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from cotyledon.wsgi._body_deadline import BodyDeadline
from cotyledon.wsgi._environ import EnvironBuilder
from cotyledon.wsgi._http_events import NEED_DATA, Data, EndOfMessage, HTTPError, Request
from cotyledon.wsgi._wsgi_input import BodyError, BodyTimeout, ClientDisconnected, InputStream
from cotyledon.wsgi._wsgi_response import (
    FileWrapper,
    ResponseError,
    StartResponse,
    close_iterable,
    known_length,
)

LOG = logging.getLogger("cotyledon.wsgi.connection")
RECV_SIZE = 65536
PREREAD_LIMIT = 65536  # body bytes buffered by the selector before the app is called
JOIN_LIMIT = 262144  # bodies up to this size are joined with the head into one send
SEND_TIMEOUT = 30.0  # seconds without any progress before a slow reader is dropped
DRAIN_SECONDS = 2.0  # reading what a client still sends after an error response...
DRAIN_BYTES = 1 << 20  # ...stops after this long or this many bytes
SERVER_HEADER = (b"Server", b"cotyledon")


class DateCache:
    """The ``Date`` header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._value = formatdate(now, usegmt=True).encode("ascii")
            self._second = second
        return self._value


class Connection:
    """One accepted client socket and its protocol state.

    The worker's selector thread owns :attr:`idle` and :attr:`deadline` while the connection
    is idle; the pool thread owns everything while it is busy.
    """

    __slots__ = (
        "base",
        "body",
        "body_deadline",
        "body_done",
        "deadline",
        "drain",
        "fd",
        "head_started",
        "idle",
        "peer",
        "pending",
        "protocol",
        "served",
        "sock",
        "started",
        "waiting_since",
    )

    def __init__(self, sock: socket.socket, protocol: Any, base: dict[str, Any]) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol = protocol
        self.base = base
        self.peer = base.get("REMOTE_ADDR", "")
        self.idle = True
        self.deadline = 0.0
        self.head_started = False  # bytes of a new request head were received
        self.drain = False  # read what the client still sends before closing (errors)
        self.waiting_since = 0.0  # when it last became idle (the oldest go first)
        self.served = False  # a response was completed on it (a keep-alive client)
        # A request whose head was read and whose body is being buffered (see above).
        self.pending: Request | None = None
        self.body = bytearray()
        self.body_done = False
        self.body_deadline: BodyDeadline | None = None
        self.started = 0.0  # wall clock time the pending request's head was read

    @property
    def silent(self) -> bool:
        """Idle between requests: nothing of a next request received (cheapest to close)."""
        return self.idle and not self.head_started and self.pending is None

    # -- raw I/O on the non-blocking socket ---------------------------------------------

    def recv_nowait(self) -> bytes | None:
        """What the socket has (b"" on EOF), None when nothing is ready."""
        try:
            return self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None
        except (ConnectionError, TimeoutError):
            return b""

    def recv(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` seconds for bytes (b"" on EOF); None when none came."""
        data = self.recv_nowait()
        if data is None:
            if not _wait(self.fd, select.POLLIN, timeout):
                return None
            data = self.recv_nowait()
        return data

    def send(self, data: bytes | memoryview) -> None:
        """Send everything; a client that takes nothing for SEND_TIMEOUT is dropped."""
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                if not _wait(self.fd, select.POLLOUT, SEND_TIMEOUT):
                    raise ClientDisconnected("timed out writing to the client") from None
                continue
            except (ConnectionError, TimeoutError) as exc:
                raise ClientDisconnected(str(exc)) from None
            view = view[sent:]

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """``os.sendfile`` from ``fd`` until ``count`` bytes went out; returns bytes sent."""
        total = 0
        while total < count:
            try:
                sent = os.sendfile(self.fd, fd, offset + total, count - total)
            except BlockingIOError:
                if not _wait(self.fd, select.POLLOUT, SEND_TIMEOUT):
                    raise ClientDisconnected("timed out writing to the client") from None
                continue
            except (ConnectionError, TimeoutError) as exc:
                raise ClientDisconnected(str(exc)) from None
            if sent == 0:  # the file is shorter than announced
                break
            total += sent
        return total

    def close(self) -> None:
        """Half-close, read what is in flight so the kernel does not reset, then close.

        After an error response (:attr:`drain`) keep reading for a short while (bounded in
        time and bytes, RFC 9112 section 9.6): closing with unread bytes would make the
        kernel reset the connection and the client could lose the response.
        """
        try:
            self.sock.shutdown(socket.SHUT_WR)
            budget = DRAIN_BYTES if self.drain else RECV_SIZE
            deadline = time.monotonic() + DRAIN_SECONDS
            while budget > 0:
                data = self.recv_nowait()
                if data is None:
                    if not self.drain or not _wait(
                        self.fd, select.POLLIN, deadline - time.monotonic()
                    ):
                        break
                    continue
                if not data:
                    break
                budget -= len(data)
        except OSError:
            pass
        self.sock.close()


def _wait(fd: int, events: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(timeout, 0.0) * 1000))


class RequestHandler:
    """Runs requests of any connection; one per worker, shared by the pool threads.

    :param on_request_done: called once per request with (connection, environ, status,
        bytes sent, start time) - the worker's access log and counters.
    :param on_request_start: called when a request's head has been read (counters).
    :param body_timeout: the longest wait for each piece of a request body (seconds).
    :param body_total: seconds for a whole body after its head (0: no limit).
    :param body_min_rate: slowest average body rate in bytes per second (0: no minimum).
    """

    def __init__(
        self,
        app: Callable[..., Any],
        builder: EnvironBuilder,
        *,
        body_timeout: float,
        keepalive: bool,
        stopping: Callable[[], bool],
        on_request_done: Callable[[Connection, dict[str, Any], int, int, float], None]
        | None = None,
        on_request_start: Callable[[], None] | None = None,
        body_total: float = 0.0,
        body_min_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.builder = builder
        self.body_timeout = body_timeout
        self.body_total = body_total
        self.body_min_rate = body_min_rate
        self.clock = clock
        self.keepalive = keepalive
        self.stopping = stopping
        self.on_request_done = on_request_done
        self.on_request_start = on_request_start
        self.dates = DateCache()

    def handle(self, conn: Connection) -> bool:
        """Serve what the readable ``conn`` has; True to give it back to the selector."""
        data = conn.recv_nowait()
        if data is None:
            return True
        try:
            conn.protocol.receive_data(data)
            if conn.pending is not None and conn.body_deadline is not None:
                conn.body_deadline.add(len(data), self.clock())
            return self._serve_received(conn, got_data=bool(data))
        except HTTPError as exc:
            if conn.pending is not None:
                self.fail_pending(conn, exc, blocking=True)
            else:
                self._reject(conn, exc)
        except ClientDisconnected:
            pass
        return False

    def _serve_received(self, conn: Connection, *, got_data: bool) -> bool:
        """Answer every request the received bytes complete; True to wait for more."""
        protocol = conn.protocol
        while True:
            request = conn.pending
            if request is None:
                event = protocol.next_event()
                if event is NEED_DATA:
                    conn.head_started = conn.head_started or got_data
                    return True
                if type(event) is not Request:
                    return False  # ConnectionClosed (or a state we cannot continue from)
                conn.head_started = False
                request = self._start_body(conn, event)
            if not self._preread(conn, request):
                return True  # back to the selector until more of the body comes
            conn.pending = None
            if conn.body_deadline is not None:
                conn.body_deadline.pause(self.clock())  # the app's time from now
            if not self.respond(conn, request):
                return False
            protocol.start_next_cycle()
            got_data = False

    def _start_body(self, conn: Connection, request: Request) -> Request:
        """A head was read: its body's deadline starts now."""
        conn.pending = request
        conn.started = time.time()
        conn.body.clear()
        conn.body_done = False
        conn.body_deadline = BodyDeadline(
            self.clock(),
            idle=self.body_timeout,
            total=self.body_total,
            min_rate=self.body_min_rate,
        )
        return request

    def _preread(self, conn: Connection, request: Request) -> bool:
        """Buffer the body already received; True when the app can be called now.

        Raises HTTPError for a malformed body (the protocol's status: 400, 413).
        """
        if request.expect_continue:
            return True  # the app decides whether it wants the body (100 Continue)
        protocol = conn.protocol
        while not conn.body_done and len(conn.body) < PREREAD_LIMIT:
            event = protocol.next_event()
            if type(event) is Data:
                conn.body += event.data
            elif type(event) is EndOfMessage:
                conn.body_done = True
            else:  # NEED_DATA; PAUSED cannot come before the response
                return event is not NEED_DATA
        return True

    def fail_pending(self, conn: Connection, error: HTTPError, *, blocking: bool) -> None:
        """Answer the pending request (body refused or too slow) with ``error``'s status,
        counted and logged like any request; the connection must then be closed.

        ``blocking=False`` (the selector thread) sends what the socket takes at once.
        """
        request = conn.pending
        assert request is not None
        conn.pending = None
        LOG.debug("Request body from %s: %r", conn.peer, error)
        if self.on_request_start is not None:
            self.on_request_start()
        payload = conn.protocol.error_response(error, self._extra_headers())
        sent = 0
        try:
            if blocking:
                conn.drain = True
                conn.send(payload)
                sent = len(payload)
            else:
                sent = conn.sock.send(payload)
        except OSError:
            pass
        if self.on_request_done is not None:
            body = InputStream(conn, False, 0.0, done=True)
            environ = self.builder.build(conn.base, request, body)
            self.on_request_done(conn, environ, error.status_hint, sent, conn.started)

    def expire(self, conn: Connection) -> None:
        """The selector found ``conn``'s pending body expired: answer 408 (non-blocking)."""
        self.fail_pending(conn, BodyTimeout().error, blocking=False)

    def _reject(self, conn: Connection, exc: HTTPError) -> None:
        LOG.debug("Bad request from %s: %r", conn.peer, exc)
        conn.drain = True
        with contextlib.suppress(OSError, HTTPError):
            conn.send(conn.protocol.error_response(exc, self._extra_headers()))

    def _extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"Date", self.dates.get()), SERVER_HEADER]

    def respond(self, conn: Connection, request: Request) -> bool:
        """Run the app for ``request``; True when the connection may serve another one."""
        start = conn.started or time.time()
        if self.on_request_start is not None:
            self.on_request_start()
        protocol = conn.protocol
        deadline = conn.body_deadline or self.body_timeout
        body = InputStream(
            conn,
            request.expect_continue,
            deadline,
            buffered=conn.body,
            done=conn.body_done,
            clock=self.clock,
        )
        conn.body.clear()
        conn.body_deadline = None
        conn.started = 0.0
        environ = self.builder.build(conn.base, request, body)
        head_only = request.method == b"HEAD"
        writer = _ResponseWriter(self, conn, body, head_only)
        status = 500
        try:
            result = self.app(environ, writer.start_response)
            try:
                writer.send_result(result)
            finally:
                close_iterable(result)
            status = writer.start_response.status or 500
        except ClientDisconnected:
            return False
        except Exception as exc:
            status = self._app_failed(conn, writer, body, exc)
            if status == 0:
                return False
        finally:
            if self.on_request_done is not None:
                self.on_request_done(conn, environ, status, writer.sent, start)
        # Keep-alive was decided with the head (stopping included): a response that
        # promised it keeps it, or the client's next request, maybe sent already, is lost.
        return bool(protocol.keep_alive)

    def _app_failed(
        self, conn: Connection, writer: _ResponseWriter, body: InputStream, exc: Exception
    ) -> int:
        """Answer a failed request: the protocol's error for a bad body, else 500; 0 when the
        head was already sent (the connection is aborted)."""
        if writer.start_response.head_sent:
            LOG.error("Error while sending the response to %s; aborting", conn.peer, exc_info=exc)
            return 0
        error = body.error if isinstance(exc, BodyError) else None
        if error is None:
            LOG.error("Error in the WSGI application", exc_info=exc)
            error = HTTPError("Internal Server Error", 500)
        conn.protocol.disable_keep_alive()
        conn.drain = True
        try:
            payload = conn.protocol.error_response(error, self._extra_headers())
            conn.send(payload)
        except (OSError, HTTPError):
            return 0
        writer.sent = len(payload)
        return error.status_hint


class _ResponseWriter:
    """Turns one app's result into bytes on the socket (head joined with small bodies)."""

    __slots__ = ("body", "conn", "handler", "head_only", "sent", "start_response")

    def __init__(
        self, handler: RequestHandler, conn: Connection, body: InputStream, head_only: bool
    ) -> None:
        self.handler = handler
        self.conn = conn
        self.body = body
        self.head_only = head_only
        self.sent = 0
        self.start_response = StartResponse(self.write)

    def _head(self, length: int | None) -> bytes:
        """The response head; decides keep-alive first (an unread body closes)."""
        sr = self.start_response
        if sr.status is None:
            raise ResponseError("the app returned without calling start_response()")
        protocol = self.conn.protocol
        handler = self.handler
        if (
            sr.close
            or not handler.keepalive
            or handler.stopping()
            or not self.body.finished_nowait()
        ):
            protocol.disable_keep_alive()
        headers = sr.headers
        if length is not None and sr.content_length is None:
            headers = [*headers, (b"Content-Length", str(length).encode("ascii"))]
            sr.content_length = length
        headers = [*headers, (b"Date", self.handler.dates.get()), SERVER_HEADER]
        head = bytes(protocol.send_response(sr.status, headers, sr.reason or None))
        sr.head_sent = True  # only now: a refused head can still become a 500
        return head

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: the head if not sent yet, then ``data``, unbuffered."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        out = b"" if self.start_response.head_sent else self._head(None)
        out += self.conn.protocol.send_data(bytes(data)) if data else b""
        self._send(out)

    def _send(self, data: bytes) -> None:
        if data:
            self.conn.send(data)
            self.sent += len(data)

    def send_result(self, result: Any) -> None:
        """Send the app's iterable (and the end of the message)."""
        protocol = self.conn.protocol
        if isinstance(result, FileWrapper) and self._try_sendfile(result):
            return
        length = known_length(result)
        if length is not None and length <= JOIN_LIMIT and not self.start_response.head_sent:
            parts = [self._head(length)]
            if not self.head_only:
                parts.extend(protocol.send_data(chunk) for chunk in result if chunk)
            parts.append(protocol.send_end())
            self._send(b"".join(parts))
            return
        for chunk in result:
            if not chunk:
                continue
            if not isinstance(chunk, (bytes, bytearray)):
                raise TypeError(f"the app yielded {type(chunk).__name__}, not bytes")
            if self.start_response.head_sent:
                self._send(protocol.send_data(bytes(chunk)))
            else:
                self._send(self._head(None) + protocol.send_data(bytes(chunk)))
        tail = b"" if self.start_response.head_sent else self._head(0 if length == 0 else None)
        self._send(tail + protocol.send_end())

    def _try_sendfile(self, wrapper: FileWrapper) -> bool:
        """Serve a regular file with ``os.sendfile``; False to fall back to iteration."""
        if self.start_response.head_sent or self.start_response.status is None:
            return False
        try:
            fd = wrapper.filelike.fileno()
            info = os.fstat(fd)
            offset = wrapper.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        count = max(info.st_size - offset, 0)
        declared = self.start_response.content_length
        if declared is not None:
            count = min(count, declared)
        protocol = self.conn.protocol
        head = self._head(count)
        if self.head_only:
            self._send(head + protocol.send_end())
            return True
        self._send(head)
        sent = self.conn.sendfile(fd, offset, count)
        self.sent += sent
        if sent < count:
            raise ClientDisconnected("file shorter than its announced length")
        protocol.send_data_external(sent)
        self._send(protocol.send_end())
        return True


__all__ = [
    "ClientDisconnected",
    "Connection",
    "DateCache",
    "InputStream",
    "RequestHandler",
]
