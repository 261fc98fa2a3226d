"""Drive one client socket through the sans-IO protocol and the WSGI app.

A pool thread calls :meth:`RequestHandler.handle` when the worker's selector saw the socket
readable. It reads what is there (one ``recv``), feeds ``_http_protocol``, and for every
complete request head builds the environ, calls the app and writes the response (head and
small bodies in one ``send``; large bodies gathered with ``sendmsg``, never copied;
``sendfile`` for ``wsgi.file_wrapper`` over a real file).  An app error before the first
byte of the response went out is a 500; after it, the connection is cut.
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
IOV_MAX = 1024  # buffers per sendmsg() (Linux UIO_MAXIOV)
LOGGED_LINE = 4096  # bytes of a refused request line kept for the access log
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

    def send_parts(self, parts: list[bytes]) -> int:
        """Send ``parts`` in order; returns the byte count.

        Small ones are joined into one ``send`` (one syscall); large ones go out with
        ``sendmsg`` straight from their buffers, so a large body is never copied.
        """
        if len(parts) == 1:
            self.send(parts[0])
            return len(parts[0])
        total = sum(map(len, parts))
        if total <= JOIN_LIMIT:
            self.send(b"".join(parts))
            return total
        views = [memoryview(part) for part in parts if part]
        first = 0
        while first < len(views):
            try:
                sent = self.sock.sendmsg(views[first : first + IOV_MAX])
            except BlockingIOError:
                if not _wait(self.fd, select.POLLOUT, SEND_TIMEOUT):
                    raise ClientDisconnected("timed out writing to the client") from None
                continue
            except (ConnectionError, TimeoutError) as exc:
                raise ClientDisconnected(str(exc)) from None
            while sent:
                size = len(views[first])
                if sent < size:
                    views[first] = views[first][sent:]
                    break
                sent -= size
                first += 1
        return total

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
        body bytes sent, start time) - the worker's access log and counters; also for the
        requests the protocol refused (400, 408, 413, 414, 431, 505...), with an environ
        holding what arrived of their request line.
    :param on_request_start: called when a request's head has been read (counters), and
        before ``on_request_done`` for a refused request.
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
                self.fail_pending(conn, exc, nowait=False)
            else:
                LOG.debug("Bad request from %s: %r", conn.peer, exc)
                self.refuse(conn, exc)
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

    def fail_pending(self, conn: Connection, error: HTTPError, *, nowait: bool) -> None:
        """Answer the pending request (its body refused or too slow) with ``error``'s status,
        then count it like any other (access log with its request line, counters).

        :param nowait: one non-blocking send and no draining (the selector thread's 408).
        """
        request = conn.pending
        assert request is not None
        conn.pending = None
        LOG.debug("Request body from %s: %r", conn.peer, error)
        with contextlib.suppress(HTTPError):
            payload = conn.protocol.error_response(error, self._extra_headers())
            if not payload:
                return
            conn.drain = not nowait
            with contextlib.suppress(OSError):
                if nowait:
                    conn.sock.send(payload)
                else:
                    conn.send(payload)
            if self.on_request_done is not None:
                if self.on_request_start is not None:
                    self.on_request_start()
                body = InputStream(conn, False, 0.0, done=True)
                environ = self.builder.build(conn.base, request, body)
                status, size = _status_and_body_size(payload)
                self.on_request_done(conn, environ, status, size, conn.started)

    def expire(self, conn: Connection) -> None:
        """The selector found ``conn``'s pending body expired: answer 408 (non-blocking)."""
        self.fail_pending(conn, BodyTimeout().error, nowait=True)

    def refuse(self, conn: Connection, exc: HTTPError, *, nowait: bool = False) -> None:
        """Answer a request the protocol refused (or whose head timed out), then count it
        like any other: access log (with what arrived of its request line) and counters.

        :param nowait: one non-blocking send and no draining (the selector thread's 408).
        """
        start = time.time()
        protocol = conn.protocol
        buffered = protocol.trailing_data[0][:LOGGED_LINE]
        with contextlib.suppress(HTTPError):
            payload = protocol.error_response(exc, self._extra_headers())
            if not payload:
                return
            conn.drain = not nowait
            with contextlib.suppress(OSError):
                if nowait:
                    conn.sock.send(payload)
                else:
                    conn.send(payload)
            if self.on_request_done is not None:
                if self.on_request_start is not None:
                    self.on_request_start()
                method, target, version = known_request_line(buffered)
                environ = {
                    **conn.base,
                    "REQUEST_METHOD": method,
                    "RAW_URI": target,
                    "SERVER_PROTOCOL": version,
                }
                status, size = _status_and_body_size(payload)
                self.on_request_done(conn, environ, status, size, start)

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
        except BaseException as exc:  # SystemExit too: the client still gets its 500
            status = self._app_failed(conn, writer, body, exc)
            return False
        finally:
            if self.on_request_done is not None:
                self.on_request_done(conn, environ, status, writer.body_sent, start)
        # Keep-alive was decided with the head (stopping included): a response that
        # promised it keeps it, or the client's next request, maybe sent already, is lost.
        return bool(protocol.keep_alive)

    def _app_failed(
        self, conn: Connection, writer: _ResponseWriter, body: InputStream, exc: BaseException
    ) -> int:
        """Answer a failed request and return the status to log.

        While no byte of the response was written: the protocol's error for a bad body, else
        500 (whatever head the app had asked for is dropped). Once some were, the connection
        is cut: the client sees a body without its end, never a complete wrong one.
        """
        if writer.start_response.head_sent:  # some bytes may be out
            LOG.error("Error while sending the response to %s; aborting", conn.peer, exc_info=exc)
            return writer.start_response.status or 500
        error = body.error if isinstance(exc, BodyError) else None
        if error is None:
            LOG.error("Error in the WSGI application", exc_info=exc)
            error = HTTPError("Internal Server Error", 500)
        conn.protocol.disable_keep_alive()
        conn.drain = True
        try:
            payload = conn.protocol.error_response(error, self._extra_headers(), head_unsent=True)
            conn.send(payload)
        except (OSError, HTTPError):
            return error.status_hint
        status, writer.body_sent = _status_and_body_size(payload)
        return status


class _ResponseWriter:
    """Turns one app's result into bytes on the socket (head joined with small bodies).

    Nothing goes out before the head and the first body bytes are framed: a mistake of the
    app found while framing them (a ``str``, more bytes than its ``Content-Length``...) still
    becomes a 500. ``start_response.head_sent`` is set just before the first write;
    :attr:`body_sent` counts the body bytes written (the access log's size).
    """

    __slots__ = ("body", "body_sent", "conn", "handler", "head_only", "start_response")

    def __init__(
        self, handler: RequestHandler, conn: Connection, body: InputStream, head_only: bool
    ) -> None:
        self.handler = handler
        self.conn = conn
        self.body = body
        self.head_only = head_only
        self.body_sent = 0
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
        return bytes(protocol.send_response(sr.status, headers, sr.reason or None))

    def _send(self, parts: list[bytes], body: int) -> None:
        """Write ``parts`` (the head first, if not sent yet); ``body`` bytes are the app's."""
        # Only now, just before the first write: until then a failure is still a 500.
        self.start_response.head_sent = True
        self.conn.send_parts(parts)
        self.body_sent += body

    def _frame(self, chunk: bytes, parts: list[bytes]) -> int:
        """Add ``chunk``, framed, to ``parts`` (no copy); returns its body bytes sent."""
        framed = self.conn.protocol.send_data_parts(chunk)
        parts.extend(framed)
        return len(chunk) if framed else 0

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: the head if not sent yet, then ``data``, unbuffered."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        parts = [] if self.start_response.head_sent else [self._head(None)]
        body = self._frame(bytes(data), parts) if data else 0
        if parts:
            self._send(parts, body)

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
            self._send([b"".join(parts)], 0 if self.head_only else length)
            return
        for item in result:
            if not item:
                continue
            if type(item) is bytes:
                chunk = item
            elif isinstance(item, bytearray):
                chunk = bytes(item)
            else:
                raise TypeError(f"the app yielded {type(item).__name__}, not bytes")
            parts = [] if self.start_response.head_sent else [self._head(length)]
            body = self._frame(chunk, parts)
            self._send(parts, body)
        parts = [] if self.start_response.head_sent else [self._head(length)]
        parts.append(protocol.send_end())
        self._send(parts, 0)

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
            if count < declared:
                raise ResponseError(f"file of {count} bytes for a Content-Length of {declared}")
            count = declared
        protocol = self.conn.protocol
        head = self._head(count)
        if self.head_only:
            self._send([head, protocol.send_end()], 0)
            return True
        self._send([head], 0)
        sent = self.conn.sendfile(fd, offset, count)
        self.body_sent += sent
        if sent < count:
            raise ClientDisconnected("file shorter than its announced length")
        protocol.send_data_external(sent)
        self._send([protocol.send_end()], 0)
        return True


def known_request_line(buffered: bytes) -> tuple[str, str, str]:
    """(method, target, protocol) of a refused request, as far as they arrived.

    Taken from the first line of what was buffered (cut at its CRLF, or where the buffer
    ends), ``-`` for the parts that never came; the access log escapes them.
    """
    line = buffered.partition(b"\r\n")[0]
    fields = [field.decode("latin-1") for field in line.split(b" ", 2)]
    fields += ["-"] * (3 - len(fields))
    method, target, version = (field or "-" for field in fields)
    return method, target, version


def _status_and_body_size(response: bytes) -> tuple[int, int]:
    """Status and body length of a complete response (an ``error_response()``)."""
    return int(response[9:12]), len(response) - response.index(b"\r\n\r\n") - 4


__all__ = [
    "ClientDisconnected",
    "Connection",
    "DateCache",
    "InputStream",
    "RequestHandler",
    "known_request_line",
]
