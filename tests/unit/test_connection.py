"""The connection driver's pure helpers and its gathered send over a real socket pair."""

from __future__ import annotations

import socket
import threading

import pytest

from cotyledon.wsgi._connection import JOIN_LIMIT, Connection, known_request_line
from cotyledon.wsgi._http_protocol import ServerConnection


@pytest.mark.parametrize(
    ("buffered", "fields"),
    [
        (b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n", ("GET", "/a?b", "HTTP/1.1")),
        (b"GET / HTTP/2.0\r\n", ("GET", "/", "HTTP/2.0")),
        (b"GARBAGE\r\n\r\n", ("GARBAGE", "-", "-")),
        (b"GET /cut-by-the-limit", ("GET", "/cut-by-the-limit", "-")),
        (b"", ("-", "-", "-")),
        (b"GET  / HTTP/1.1\r\n", ("GET", "-", "/ HTTP/1.1")),  # as it came; escaped by the log
        (b"G\xe9T /\x00 HTTP/1.1\r\n", ("G\xe9T", "/\x00", "HTTP/1.1")),
    ],
)
def test_known_request_line(buffered: bytes, fields: tuple[str, str, str]) -> None:
    assert known_request_line(buffered) == fields


@pytest.mark.parametrize("sizes", [[10, 20], [100, JOIN_LIMIT], [5, 3 << 20, 2, 0, 7]])
def test_send_parts_sends_every_byte_in_order(sizes: list[int]) -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)  # as in the worker: partial sends and EAGAIN happen
    parts = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    received = bytearray()

    def read() -> None:
        while True:
            data = theirs.recv(65536)
            if not data:
                return
            received.extend(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        conn = Connection(ours, ServerConnection(), {})
        assert conn.send_parts(parts) == sum(sizes)
        ours.shutdown(socket.SHUT_WR)
        reader.join(20)
        assert not reader.is_alive()
        assert received == b"".join(parts)
    finally:
        ours.close()
        theirs.close()
