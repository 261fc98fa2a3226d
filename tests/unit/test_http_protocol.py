"""ServerConnection, receiving side: event order, PAUSED, pipelining, keep-alive, states."""

from __future__ import annotations

import pytest

from cotyledon.wsgi._http_events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)
from cotyledon.wsgi._http_protocol import Limits, ServerConnection, State

GET = b"GET /%s HTTP/1.1\r\nHost: example.com\r\n\r\n"


def _events_until_paused(conn: ServerConnection) -> list[object]:
    events = []
    while True:
        event = conn.next_event()
        events.append(event)
        if event is PAUSED or event is NEED_DATA or isinstance(event, ConnectionClosed):
            return events


def _respond(conn: ServerConnection, body: bytes = b"ok") -> bytes:
    length = str(len(body)).encode()
    return (
        conn.send_response(200, [(b"Content-Length", length)])
        + conn.send_data(body)
        + conn.send_end()
    )


def test_simple_request_events_and_states() -> None:
    conn = ServerConnection()
    assert (conn.their_state, conn.our_state) == (State.IDLE, State.IDLE)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(GET % b"a")
    request = conn.next_event()
    assert isinstance(request, Request)
    assert (request.method, request.target, request.http_version) == (b"GET", b"/a", b"1.1")
    assert request.headers == ((b"host", b"example.com"),)
    assert request.keep_alive
    assert not request.expect_continue
    assert conn.their_state is State.SEND_BODY
    assert conn.next_event() == EndOfMessage()
    assert conn.their_state is State.DONE
    assert conn.next_event() is PAUSED
    conn.send_response(200, [(b"Content-Length", b"0")])
    assert conn.our_state is State.SEND_BODY
    conn.send_end()
    assert conn.our_state is State.DONE
    assert conn.keep_alive
    conn.start_next_cycle()
    assert (conn.their_state, conn.our_state) == (State.IDLE, State.IDLE)


def test_pipelined_requests_wait_in_the_buffer_until_the_response_ends() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"1" + GET % b"2" + GET % b"3")
    seen = []
    for _ in range(3):
        events = _events_until_paused(conn)
        assert isinstance(events[0], Request)
        assert events[1:] == [EndOfMessage(), PAUSED]
        seen.append(events[0].target)
        # still paused, whatever the caller does, until the response is complete
        conn.send_response(200, [(b"Content-Length", b"2")])
        assert conn.next_event() is PAUSED
        conn.send_data(b"ok")
        assert conn.next_event() is PAUSED
        conn.send_end()
        assert conn.next_event() is PAUSED
        conn.start_next_cycle()
    assert seen == [b"/1", b"/2", b"/3"]
    assert conn.next_event() is NEED_DATA


def test_pipelined_garbage_is_not_parsed_before_the_response() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"1" + b"\x00\x01 not http\r\n\r\n")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    _respond(conn)
    conn.start_next_cycle()
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400


def test_request_body_by_content_length_in_pieces() -> None:
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == Data(b"hel")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"lo worldGET")
    assert conn.next_event() == Data(b"lo world")
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    assert conn.trailing_data == (b"GET", False)


def test_connection_closed_between_requests() -> None:
    conn = ServerConnection()
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.their_state is State.CLOSED
    assert conn.next_event() == ConnectionClosed()


def test_blank_lines_then_eof_is_a_clean_close() -> None:
    conn = ServerConnection()
    conn.receive_data(b"\r\n\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()


def test_eof_after_the_request_still_lets_us_answer() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    _respond(conn)
    conn.start_next_cycle()
    assert conn.next_event() == ConnectionClosed()


def test_data_after_eof_is_our_mistake() -> None:
    conn = ServerConnection()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_error_state_is_final() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.their_state is State.ERROR
    assert not conn.keep_alive
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


@pytest.mark.parametrize(
    ("request_bytes", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", False),
    ],
)
def test_keep_alive_follows_the_client(request_bytes: bytes, keep_alive: bool) -> None:
    conn = ServerConnection()
    conn.receive_data(request_bytes)
    request = conn.next_event()
    assert isinstance(request, Request)
    assert request.keep_alive is keep_alive
    conn.next_event()
    _respond(conn)
    assert conn.keep_alive is keep_alive
    assert conn.our_state is (State.DONE if keep_alive else State.MUST_CLOSE)


def test_server_without_keep_alive() -> None:
    conn = ServerConnection(keep_alive=False)
    conn.receive_data(GET % b"" + GET % b"")
    conn.next_event()
    conn.next_event()
    head = conn.send_response(200, [(b"Content-Length", b"0")])
    assert head.endswith(b"Connection: close\r\n\r\n")
    conn.send_end()
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_disable_keep_alive_before_and_after_the_head() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.next_event()
    conn.next_event()
    conn.disable_keep_alive()
    assert b"Connection: close" in conn.send_response(200, [(b"Content-Length", b"0")])
    conn.send_end()
    assert not conn.keep_alive

    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.next_event()
    conn.next_event()
    assert b"Connection" not in conn.send_response(200, [(b"Content-Length", b"0")])
    conn.disable_keep_alive()
    conn.send_end()
    assert not conn.keep_alive
    assert conn.our_state is State.MUST_CLOSE


def test_unread_body_means_no_keep_alive_until_drained() -> None:
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    assert isinstance(conn.next_event(), Request)
    _respond(conn)
    assert not conn.keep_alive  # body not read to its end
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()
    # drain: the rest arrives and is read
    assert conn.next_event() == Data(b"ab")
    conn.receive_data(b"cd")
    assert conn.next_event() == Data(b"cd")
    assert conn.next_event() == EndOfMessage()
    assert conn.keep_alive
    conn.start_next_cycle()


def test_chunked_request_body_events() -> None:
    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"3\r\nab")
    assert conn.next_event() == Data(b"ab")
    conn.receive_data(b"c\r\n0\r\n\r\n")
    assert conn.next_event() == Data(b"c")
    assert conn.next_event() == EndOfMessage()


# 100-continue


def _expecting(body_length: int = 5, version: bytes = b"1.1") -> ServerConnection:
    conn = ServerConnection()
    conn.receive_data(
        b"PUT / HTTP/%s\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
        % (version, body_length)
    )
    request = conn.next_event()
    assert isinstance(request, Request)
    return conn


def test_continue_once_before_the_body() -> None:
    conn = _expecting()
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_continue() == b""
    conn.receive_data(b"hello")
    assert conn.next_event() == Data(b"hello")
    assert conn.next_event() == EndOfMessage()
    _respond(conn)
    assert conn.keep_alive


def test_no_continue_once_body_bytes_came() -> None:
    conn = _expecting()
    conn.receive_data(b"he")
    assert conn.next_event() == Data(b"he")
    assert conn.send_continue() == b""


def test_no_continue_after_the_response_started() -> None:
    conn = _expecting()
    head = conn.send_response(413, [(b"Content-Length", b"0")])
    assert conn.send_continue() == b""
    # the client may never send the body it was waiting to send: close after this response
    assert b"Connection: close" in head
    conn.send_end()
    assert not conn.keep_alive


def test_no_continue_without_expect_or_body_or_in_http10() -> None:
    conn = ServerConnection()
    conn.receive_data(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")
    conn.next_event()
    assert conn.send_continue() == b""
    conn = _expecting(body_length=0)
    assert conn.next_event() == EndOfMessage()
    assert conn.send_continue() == b""
    conn = _expecting(version=b"1.0")
    assert conn.send_continue() == b""


def test_informational_100_through_send_response_counts_as_continue() -> None:
    conn = _expecting()
    assert conn.send_response(100, []) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.our_state is State.IDLE
    assert conn.send_continue() == b""


# limits


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="'max_header_count' must be an int >= 1, not: 0"):
        Limits(max_header_count=0)
    with pytest.raises(ValueError, match="'max_body_size' must be an int >= 1 or None"):
        Limits(max_body_size=-1)
    with pytest.raises(ValueError, match="'max_head_size'"):
        Limits(max_head_size=True)
    assert Limits(max_body_size=None).max_body_size is None


def test_body_limit_refused_before_any_body_byte() -> None:
    conn = ServerConnection(Limits(max_body_size=100))
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 413


def test_unterminated_huge_head_is_refused_early() -> None:
    conn = ServerConnection(Limits(max_head_size=1000))
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"X: " + b"a" * 1000)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 431


def test_unterminated_request_line_is_refused_early() -> None:
    conn = ServerConnection(Limits(max_request_line=100))
    conn.receive_data(b"GET /" + b"a" * 200)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 414


def test_error_response_is_complete_and_closes() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    data = conn.error_response(info.value, [(b"Server", b"cotyledon")])
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 400 Bad Request"
    assert b"Server: cotyledon" in lines
    assert b"Connection: close" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert body.startswith(b"Bad Request\n")
    assert conn.our_state is State.ERROR
    assert not conn.keep_alive


def test_error_response_after_a_started_response_is_empty() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.next_event()
    conn.send_response(200, [])
    assert conn.error_response(LocalProtocolError("app failed")) == b""
    assert conn.our_state is State.ERROR


def test_error_response_for_our_own_fault_is_a_500_without_details() -> None:
    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.next_event()
    data = conn.error_response(LocalProtocolError("secret internals"))
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"secret" not in data


@pytest.mark.parametrize("status", [413, 414, 431, 501, 505])
def test_error_response_statuses(status: int) -> None:
    conn = ServerConnection()
    data = conn.error_response(RemoteProtocolError("x", status))
    assert data.startswith(b"HTTP/1.1 %d " % status)


def test_error_response_after_an_unsent_head_still_answers() -> None:
    # The driver framed a head and found the app's mistake before writing a byte.
    conn = ServerConnection()
    conn.receive_data(GET % b"")
    conn.next_event()
    conn.send_response(200, [(b"Content-Length", b"3")])
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"too long")
    data = conn.error_response(LocalProtocolError("app failed"), head_unsent=True)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Connection: close\r\n" in data
    assert conn.our_state is State.ERROR
    assert not conn.keep_alive


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5 + b"\r\n", 431),
        (b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\n\r\n", 413),
        (b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ],
)
def test_a_refused_head_stays_in_the_buffer(head: bytes, status: int) -> None:
    # The driver logs the request line of a refused request (access log).
    conn = ServerConnection(Limits(max_header_count=4, max_body_size=10))
    conn.receive_data(head)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == status
    assert conn.trailing_data[0] == head
