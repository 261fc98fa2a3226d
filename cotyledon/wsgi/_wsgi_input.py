"""``wsgi.input``: the request body of one request, read from the protocol on demand.

Job: give the app ``read``/``readline``/``readlines``/iteration over exactly the body
(de-chunked by ``_http_protocol``), send ``100 Continue`` before the first read when the
client asked for it, and say whether the body was read to its end (so the connection
knows if it can be reused). It never reads past the body, so a pipelined request that
follows stays in the protocol's buffer.

Must not: decide keep-alive or write responses (``_connection`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


class InputStream:
    """``wsgi.input``: the request body, read from the protocol on demand.

    ``100 Continue`` is sent before the first read when the client asked for it. Reads never
    go past the body's end, so pipelined requests are safe.
    """

    def __init__(self, conn: Connection, expect_continue: bool, timeout: float) -> None:
        self._conn = conn
        self._continue = expect_continue
        self._timeout = timeout
        self._buffer = bytearray()
        self.done = False
        self.error: HTTPError | None = None

    def _pull(self, wait: bool) -> bool:
        """Move the next body event into the buffer; False when nothing more comes now."""
        if self.done:
            return False
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
            protocol.receive_data(self._conn.recv(self._timeout))

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
