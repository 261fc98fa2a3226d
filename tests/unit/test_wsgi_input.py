"""wsgi.input reads exactly the request body, however it is chunked and however the app
reads it (compared with io.BytesIO over the same bytes), and never past its end."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotyledon.wsgi._connection import Connection
from cotyledon.wsgi._http_events import Request
from cotyledon.wsgi._http_protocol import ServerConnection
from cotyledon.wsgi._wsgi_input import InputStream


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def _stream(server: socket.socket, client: socket.socket, wire: bytes) -> InputStream:
    protocol = ServerConnection()
    conn = Connection(server, protocol, {})
    client.sendall(wire)
    protocol.receive_data(conn.recv(5))
    request = protocol.next_event()
    assert isinstance(request, Request)
    return InputStream(conn, request.expect_continue, 5)


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out = bytearray()
    start = 0
    for size in [*sizes, len(body)]:
        piece = body[start : start + max(size, 1)]
        if not piece:
            break
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
        start += len(piece)
    return bytes(out + b"0\r\n\r\n")


ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 40)),
        st.tuples(st.just("readline"), st.integers(-1, 40)),
        st.tuples(st.just("readlines"), st.integers(-1, 40)),
    ),
    max_size=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"\n")),
    sizes=st.lists(st.integers(1, 50), max_size=10),
    chunked=st.booleans(),
    script=ops,
)
def test_input_matches_bytesio(
    pair: tuple[socket.socket, socket.socket],
    body: bytes,
    sizes: list[int],
    chunked: bool,
    script: list[tuple[str, int]],
) -> None:
    server, client = pair
    if chunked:
        wire = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        wire += _chunked(body, sizes)
    else:
        wire = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    wire += b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"  # a pipelined request must stay unread
    stream = _stream(server, client, wire)
    reference = io.BytesIO(body)
    for op, arg in script:
        size = None if arg == -1 else arg
        if op == "read":
            assert stream.read(size) == reference.read(size)
        elif op == "readline":
            assert stream.readline(size) == reference.readline(size)
        else:
            assert stream.readlines(arg) == reference.readlines(arg)
    assert stream.read() == reference.read()
    assert stream.read(10) == b""
    assert stream.done
    assert stream._conn.protocol.next_event().__class__.__name__ == "Sentinel"  # PAUSED
    assert b"GET /next" in stream._conn.protocol.trailing_data[0]


def test_iteration_yields_lines(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    body = b"a\nbb\n\nccc"
    stream = _stream(
        server, client, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n" + body
    )
    assert list(stream) == [b"a\n", b"bb\n", b"\n", b"ccc"]


def test_client_gone_mid_body(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    stream = _stream(server, client, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nabc")
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(OSError, match="closed before the body was complete"):
        stream.read()
