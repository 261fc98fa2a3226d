"""start_response validation and PEP 3333 state (exc_info, double calls), file wrapper."""

from __future__ import annotations

import io
import sys

import pytest

from cotyledon.wsgi._wsgi_response import (
    FileWrapper,
    ResponseError,
    StartResponse,
    close_iterable,
    encode_headers,
    known_length,
    parse_status,
)


def test_parse_status() -> None:
    assert parse_status("200 OK") == (200, b"OK")
    assert parse_status("404 Not Found") == (404, b"Not Found")
    assert parse_status("599 \xe9") == (599, b"\xe9")
    for bad in ("200", "OK 200", "20 OK", "200 OK\r\nX: y", b"200 OK", "200\tOK", "099 X"):
        with pytest.raises(ResponseError):
            parse_status(bad)


def test_empty_reason_is_accepted() -> None:
    assert parse_status("299 ") == (299, b"")


def test_encode_headers() -> None:
    headers, close, length = encode_headers(
        [("Content-Type", "text/plain"), ("Content-Length", "3"), ("X-Caf", "\xe9")]
    )
    assert headers == [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"3"),
        (b"X-Caf", b"\xe9"),
    ]
    assert (close, length) == (False, 3)


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "b\r\nSet-Cookie: x")],
        [("X-A", "b\nc")],
        [("X-A", "b\x00")],
        [("X A", "b")],
        [("X-A:", "b")],
        [(b"X-A", "b")],
        [("X-A", b"b")],
        [("X-A", "\u20ac")],
        [("X-A",)],
        [["X-A", "b"]],
        [("Content-Length", "-1")],
        [("Content-Length", "1"), ("Content-Length", "1")],
        (("X-A", "b"),),
    ],
)
def test_bad_headers_are_refused(headers: object) -> None:
    with pytest.raises(ResponseError):
        encode_headers(headers)


def test_hop_by_hop_dropped_and_close_honoured() -> None:
    headers, close, _ = encode_headers(
        [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("X-A", "b")]
    )
    assert headers == [(b"X-A", b"b")]
    assert close is True


def _writes() -> tuple[StartResponse, list[bytes]]:
    sent: list[bytes] = []
    return StartResponse(sent.append), sent


def test_start_response_returns_write() -> None:
    sr, sent = _writes()
    write = sr("201 Created", [("X-A", "1")])
    write(b"x")
    assert sent == [b"x"]
    assert (sr.status, sr.reason, sr.headers) == (201, b"Created", [(b"X-A", b"1")])
    assert sr.started


def test_second_call_without_exc_info_fails() -> None:
    sr, _ = _writes()
    sr("200 OK", [])
    with pytest.raises(ResponseError, match="twice"):
        sr("500 Oops", [])


def _exc_info() -> tuple[type[BaseException], BaseException, object]:
    try:
        raise KeyError("boom")
    except KeyError:
        info = sys.exc_info()
    assert info[0] is not None
    return info  # type: ignore[return-value]


def test_exc_info_before_head_replaces_status() -> None:
    sr, _ = _writes()
    sr("200 OK", [("X-A", "1")])
    sr("500 Internal Server Error", [("X-B", "2")], _exc_info())  # type: ignore[arg-type]
    assert (sr.status, sr.headers) == (500, [(b"X-B", b"2")])


def test_exc_info_after_head_reraises() -> None:
    sr, _ = _writes()
    sr("200 OK", [])
    sr.head_sent = True
    with pytest.raises(KeyError, match="boom"):
        sr("500 Internal Server Error", [], _exc_info())  # type: ignore[arg-type]


def test_file_wrapper_iterates_and_closes() -> None:
    raw = io.BytesIO(b"a" * 10)
    wrapper = FileWrapper(raw, blksize=4)
    assert list(wrapper) == [b"aaaa", b"aaaa", b"aa"]
    close_iterable(wrapper)
    assert raw.closed


def test_file_wrapper_without_close() -> None:
    class Reader:
        def read(self, size: int) -> bytes:
            return b""

    FileWrapper(Reader()).close()  # type: ignore[arg-type]


def test_known_length() -> None:
    assert known_length([b"ab", b"c"]) == 3
    assert known_length((b"ab",)) == 2
    assert known_length([]) == 0
    assert known_length(iter([b"a"])) is None
    assert known_length([bytearray(b"ab")]) == 2
    assert known_length(["str"]) is None  # refused by the driver before the head
    assert known_length([1]) is None
