"""ServerConnection, sending side: framing, HEAD/204/304, Connection rules, misuse; and h11 as
a client reading what we send."""

from __future__ import annotations

import h11
import pytest

from cotyledon.wsgi._http_events import LocalProtocolError, RemoteProtocolError, Request
from cotyledon.wsgi._http_protocol import ServerConnection, State

Headers = list[tuple[bytes, bytes]]


def _conn(method: bytes = b"GET", version: bytes = b"1.1", extra: bytes = b"") -> ServerConnection:
    conn = ServerConnection()
    conn.receive_data(b"%s / HTTP/%s\r\nHost: a\r\n%s\r\n" % (method, version, extra))
    assert isinstance(conn.next_event(), Request)
    conn.next_event()
    return conn


def _head_lines(head: bytes) -> list[bytes]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")


def _respond(conn: ServerConnection, status: int, headers: Headers, *chunks: bytes) -> bytes:
    out = conn.send_response(status, headers)
    for chunk in chunks:
        out += conn.send_data(chunk)
    return out + conn.send_end()


def test_content_length_body() -> None:
    conn = _conn()
    data = _respond(conn, 200, [(b"Content-Length", b"5"), (b"X-A", b"b")], b"hel", b"lo")
    assert data == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    assert conn.keep_alive


def test_chunked_when_no_length_in_http11() -> None:
    conn = _conn()
    data = _respond(conn, 200, [(b"Content-Type", b"text/plain")], b"hello", b"", b"world!")
    assert data == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"
    )
    assert conn.keep_alive


def test_chunk_sizes_are_hex() -> None:
    conn = _conn()
    conn.send_response(200, [])
    assert conn.send_data(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"


def test_close_delimited_in_http10() -> None:
    conn = _conn(version=b"1.0", extra=b"Connection: keep-alive\r\n")
    data = _respond(conn, 200, [], b"hello")
    assert data == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"
    assert not conn.keep_alive


def test_http10_keep_alive_with_length() -> None:
    conn = _conn(version=b"1.0", extra=b"Connection: keep-alive\r\n")
    head = conn.send_response(200, [(b"Content-Length", b"0")])
    assert _head_lines(head)[-1] == b"Connection: keep-alive"
    conn.send_end()
    assert conn.keep_alive


def test_http10_without_keep_alive_closes() -> None:
    conn = _conn(version=b"1.0")
    head = conn.send_response(200, [(b"Content-Length", b"0")])
    assert _head_lines(head)[-1] == b"Connection: close"


@pytest.mark.parametrize("length", [None, b"42"])
def test_head_has_no_body_but_keeps_the_length(length: bytes | None) -> None:
    conn = _conn(method=b"HEAD")
    headers = [(b"Content-Length", length)] if length else []
    head = conn.send_response(200, headers)
    assert conn.send_data(b"the body a GET would get") == b""
    assert conn.send_end() == b""
    lines = _head_lines(head)
    assert (b"Content-Length: 42" in lines) == bool(length)
    assert not any(line.startswith(b"Transfer-Encoding") for line in lines)
    assert conn.keep_alive


def test_204_drops_content_length_and_refuses_a_body() -> None:
    conn = _conn()
    head = conn.send_response(204, [(b"Content-Length", b"0"), (b"X", b"y")])
    assert head == b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n"
    assert conn.send_data(b"") == b""
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    assert conn.our_state is State.ERROR


def test_304_keeps_content_length_without_body() -> None:
    conn = _conn()
    head = conn.send_response(304, [(b"Content-Length", b"10"), (b"ETag", b'"x"')])
    assert b"Content-Length: 10" in _head_lines(head)
    assert conn.send_end() == b""
    assert conn.keep_alive


def test_body_longer_than_content_length_is_refused() -> None:
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"3")])
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"cd")
    assert conn.our_state is State.ERROR
    assert not conn.keep_alive


def test_body_shorter_than_content_length_is_refused() -> None:
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"3")])
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    assert not conn.keep_alive


def test_external_data_for_sendfile() -> None:
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"10")])
    conn.send_data_external(6)
    conn.send_data(b"abcd")
    conn.send_end()
    assert conn.keep_alive
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"10")])
    with pytest.raises(LocalProtocolError):
        conn.send_data_external(11)
    conn = _conn()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_data_external(1)


@pytest.mark.parametrize("connection", [b"close", b"Close", b"keep-alive, close", b"foo,CLOSE"])
def test_app_connection_close_is_honoured_once(connection: bytes) -> None:
    conn = _conn()
    head = conn.send_response(200, [(b"Connection", connection), (b"Content-Length", b"0")])
    lines = _head_lines(head)
    assert [line for line in lines if line.lower().startswith(b"connection")] == [
        b"Connection: close"
    ]
    conn.send_end()
    assert not conn.keep_alive


def test_app_hop_by_hop_headers_consumed() -> None:
    conn = _conn()
    head = conn.send_response(
        200,
        [
            (b"Connection", b"keep-alive"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
        ],
    )
    assert head == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert conn.send_data(b"a") == b"1\r\na\r\n"


@pytest.mark.parametrize(
    "header",
    [
        (b"Upgrade", b"websocket"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X"),
        (b"Proxy-Connection", b"close"),
        (b"Transfer-Encoding", b"gzip"),
        (b"Content-Length", b"-1"),
        (b"Content-Length", b"1, 1"),
        (b"Content-Length", b"1 1"),
        (b"X-Bad", b"a\r\nInjected: yes"),
        (b"X-Bad", b"a\nb"),
        (b"X-Bad", b"a\x00b"),
        (b"X Bad", b"v"),
        (b"X-Bad:", b"v"),
        (b"", b"v"),
    ],
)
def test_refused_response_headers(header: tuple[bytes, bytes]) -> None:
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [header])
    assert conn.our_state is State.ERROR


def test_whitespace_around_app_values_is_trimmed() -> None:
    conn = _conn()
    head = conn.send_response(200, [(b"X-A", b" \tpadded \t"), (b"Content-Length", b" 0 ")])
    assert _head_lines(head)[1:] == [b"X-A: padded", b"Content-Length: 0"]
    assert conn.send_end() == b""


def test_a_refused_head_can_still_be_answered_with_an_error() -> None:
    conn = _conn()
    with pytest.raises(LocalProtocolError) as info:
        conn.send_response(200, [(b"X", b"a\x01b")])
    data = conn.error_response(info.value)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"1")])
    assert conn.error_response(LocalProtocolError("late")) == b""


def test_content_length_and_chunked_from_the_app_is_refused() -> None:
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [(b"Content-Length", b"1"), (b"Transfer-Encoding", b"chunked")])


def test_repeated_content_length_from_the_app_is_refused() -> None:
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [(b"Content-Length", b"1"), (b"content-length", b"1")])


@pytest.mark.parametrize("status", [0, 99, 101, 1000, -200])
def test_invalid_status(status: int) -> None:
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(status, [])


def test_reason_phrases() -> None:
    conn = _conn()
    assert (
        conn.send_response(200, [], b"Fine")
        == b"HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    conn = _conn()
    assert conn.send_response(599, [(b"Content-Length", b"0")]).startswith(b"HTTP/1.1 599 \r\n")
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [], b"OK\r\nX: y")


def test_api_misuse() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])
    conn = _conn()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    conn = _conn()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"0")])
    conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_end()


def test_response_before_the_body_is_read_then_drained() -> None:
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    conn.next_event()
    head = conn.send_response(200, [(b"Content-Length", b"0")])
    assert b"Connection" not in head  # the body may still be drained
    conn.send_end()
    assert not conn.keep_alive
    conn.receive_data(b"abc")
    conn.next_event()
    conn.next_event()
    assert conn.keep_alive


# h11 as the client: it must read back exactly what we meant to send.


def _h11_reads(method: bytes, wire: bytes) -> list[object]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    client.receive_data(b"")
    events: list[object] = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return events
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            return events


SCENARIOS = [
    (b"GET", 200, [(b"Content-Length", b"5")], [b"hel", b"lo"]),
    (b"GET", 200, [(b"Content-Type", b"text/plain")], [b"hello", b"", b" world"]),
    (b"GET", 200, [], []),
    (b"HEAD", 200, [(b"Content-Length", b"5")], [b"hello"]),
    (b"HEAD", 200, [], [b"hello"]),
    (b"GET", 204, [(b"Content-Length", b"0")], []),
    (b"GET", 304, [(b"ETag", b'"1"')], []),
    (b"GET", 404, [(b"Connection", b"close")], [b"not found"]),
    (b"POST", 201, [(b"Location", b"/x"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")], []),
]


@pytest.mark.parametrize(("method", "status", "headers", "chunks"), SCENARIOS)
def test_h11_client_reads_our_response(
    method: bytes, status: int, headers: Headers, chunks: list[bytes]
) -> None:
    conn = _conn(method=method)
    wire = _respond(conn, status, headers, *chunks)
    events = _h11_reads(method, wire)
    response = events[0]
    assert isinstance(response, h11.Response)
    assert response.status_code == status
    sent = [(n.lower(), v) for n, v in headers if n.lower() not in (b"connection",)]
    if status == 204:
        sent = [(n, v) for n, v in sent if n != b"content-length"]
    received = [
        (n, v) for n, v in response.headers if n not in (b"transfer-encoding", b"connection")
    ]
    assert received == sent
    body = b"".join(e.data for e in events if isinstance(e, h11.Data))
    expected_body = b"" if method == b"HEAD" or status in (204, 304) else b"".join(chunks)
    assert body == expected_body
    assert isinstance(events[-1], h11.EndOfMessage)


def test_h11_client_reads_a_close_delimited_http10_response() -> None:
    conn = _conn(version=b"1.0")
    wire = _respond(conn, 200, [], b"hello ", b"world")
    events = _h11_reads(b"GET", wire)
    assert isinstance(events[0], h11.Response)
    assert (b"connection", b"close") in list(events[0].headers)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"hello world"


def test_h11_client_reads_pipelined_responses_in_order() -> None:
    conn = ServerConnection()
    conn.receive_data(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3)))
    wire = b""
    for i in range(3):
        request = conn.next_event()
        assert isinstance(request, Request)
        assert request.target == b"/%d" % i
        conn.next_event()
        wire += _respond(conn, 200, [], b"response %d" % i)
        conn.start_next_cycle()
    client = h11.Connection(h11.CLIENT)
    client.receive_data(wire)
    bodies = []
    for _ in range(3):
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
        client.send(h11.EndOfMessage())
        body = b""
        while not isinstance(event := client.next_event(), h11.EndOfMessage):
            if isinstance(event, h11.Data):
                body += event.data
        bodies.append(body)
        client.start_next_cycle()
    assert bodies == [b"response 0", b"response 1", b"response 2"]


def test_h11_client_reads_our_error_response() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    wire = conn.error_response(RemoteProtocolError("missing Host"))
    events = _h11_reads(b"GET", wire)
    assert isinstance(events[0], h11.Response)
    assert events[0].status_code == 400
    assert (b"connection", b"close") in list(events[0].headers)
    assert isinstance(events[-1], h11.EndOfMessage)


def test_send_data_parts_frames_around_the_body_without_copying_it() -> None:
    conn = _conn()
    conn.send_response(200, [])
    body = b"x" * 1000
    parts = conn.send_data_parts(body)
    assert parts[1] is body
    assert b"".join(parts) == b"3e8\r\n" + body + b"\r\n"
    assert conn.send_data_parts(b"") == []  # an empty chunk would end the body
    assert conn.send_end() == b"0\r\n\r\n"


def test_send_data_parts_with_a_length_and_for_head() -> None:
    conn = _conn()
    conn.send_response(200, [(b"Content-Length", b"4")])
    body = b"abcd"
    assert conn.send_data_parts(body)[0] is body
    with pytest.raises(LocalProtocolError):
        conn.send_data_parts(b"e")  # longer than announced
    head = _conn(b"HEAD")
    head.send_response(200, [(b"Content-Length", b"4")])
    assert head.send_data_parts(body) == []
