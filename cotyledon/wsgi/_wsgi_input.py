"""``wsgi.input``: the request body of one request, read from the protocol on demand.

Job: give the app ``read``/``readline``/``readlines``/iteration over exactly the body
(de-chunked by ``_http_protocol``), send ``100 Continue`` before the first read when the
client asked for it, and say whether the body was read to its end (so the connection
knows if it can be reused). It never reads past the body, so a pipelined request that
follows stays in the protocol's buffer.

Bytes buffered before the app was called (the worker's selector reads small bodies first,
see ``_connection``) are served first. Every wait for more bytes is bounded by the body's
:class:`~cotyledon.wsgi._body_deadline.BodyDeadline` (idle, total and minimum rate): an
expired body raises :class:`BodyTimeout`, which the connection answers with ``408``.

Must not: decide keep-alive or write responses (``_connection`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cotyledon.wsgi._body_deadline import BodyDeadline
from cotyledon.wsgi._http_events import NEED_DATA, ConnectionClosed, Data, EndOfMessage, HTTPError

if TYPE_CHECKING:
    from cotyledon.wsgi._connection import Connection


class ClientDisconnected(OSError):
    """The client went away (reset, timeout, EOF mid-body)."""


class BodyError(OSError):
    """Reading the request body failed on a protocol error (``error`` has the status)."""

    def __init__(self, error: HTTPError) -> None:
        super().__init__(error.reason)
        self.error = error


class BodyTimeout(BodyError):
    """The request body did not arrive in time (idle, total or minimum rate): ``408``."""

    def __init__(self) -> None:
        super().__init__(HTTPError("Request Timeout", 408))


class InputStream:
    """``wsgi.input``: the request body, read from the protocol on demand.

    ``100 Continue`` is sent before the first read when the client asked for it. Reads never
    go past the body's end, so pipelined requests are safe.

    :param deadline: the body's deadline, or a number of seconds to wait for each read.
    :param buffered: body bytes already read (de-framed) before the app was called.
    :param done: True when ``buffered`` is the whole body.
    """

    def __init__(
        self,
        conn: Connection,
        expect_continue: bool,
        deadline: BodyDeadline | float,
        *,
        buffered: bytes | bytearray = b"",
        done: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._continue = expect_continue
        if not isinstance(deadline, BodyDeadline):
            deadline = BodyDeadline(clock(), idle=deadline)
            deadline.pause(clock())
        self._deadline = deadline
        self._clock = clock
        self._buffer = bytearray(buffered)
        self.done = done
        self.error: HTTPError | None = None

    def _pull(self, wait: bool) -> bool:
        """Move the next body event into the buffer; False when nothing more comes now."""
        if self.done:
            return False
        if self.error is not None:  # timed out (or refused) already: no reading past that
            raise BodyError(self.error)
        protocol = self._conn.protocol
        while True:
            try:
                event = protocol.next_event()
            except HTTPError as exc:
                self.error = exc
                raise BodyError(exc) from None
            if type(event) is Data:
                self._buffer += event.data
                return True
            if type(event) is EndOfMessage:
                self.done = True
                return False
            if event is not NEED_DATA:  # ConnectionClosed or PAUSED: no more body
                self.done = True
                if isinstance(event, ConnectionClosed):
                    raise ClientDisconnected("client closed the connection mid-body")
                return False
            if not wait:
                return False
            if self._continue:
                self._continue = False
                self._conn.send(protocol.send_continue())
            protocol.receive_data(self._receive())

    def _receive(self) -> bytes:
        """The next bytes from the client, within the body's deadline."""
        deadline = self._deadline
        deadline.resume(self._clock())
        data = self._conn.recv(deadline.remaining(self._clock()))
        now = self._clock()
        if data is None:
            timeout = BodyTimeout()
            self.error = timeout.error
            raise timeout
        deadline.add(len(data), now)
        deadline.pause(now)  # the app works on it: not the client's time
        return data

    def finished_nowait(self) -> bool:
        """True when the whole body has been received (consuming only buffered bytes)."""
        try:
            while self._pull(wait=False):
                pass
        except OSError:
            return False
        return self.done

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._pull(wait=True):
                pass
            size = len(self._buffer)
        while len(self._buffer) < size and self._pull(wait=True):
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit is None or end < limit):
                return self.read(end + 1)
            if limit is not None and len(self._buffer) >= limit:
                return self.read(limit)
            if not self._pull(wait=True):
                return self.read(len(self._buffer) if limit is None else limit)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> InputStream:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
