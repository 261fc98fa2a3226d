"""ChunkedReader on its own: incremental reading, the end marker, limits, what it consumes."""

from __future__ import annotations

import pytest

from cotyledon.wsgi._http_events import RemoteProtocolError
from cotyledon.wsgi._http_framing import END, MAX_CHUNK_LINE, ChunkedReader


def _reader(max_body: int | None = None) -> ChunkedReader:
    return ChunkedReader(max_body, max_trailer_size=100, max_trailer_count=2)


def _read_all(reader: ChunkedReader, buf: bytearray) -> list[object]:
    out: list[object] = []
    while (piece := reader.next(buf, eof=False)) is not None:
        out.append(piece)
        if piece is END:
            break
    return out


def test_reads_pieces_and_stops_at_the_end_of_the_body() -> None:
    reader = _reader()
    buf = bytearray(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\n")
    assert not reader.started
    assert _read_all(reader, buf) == [b"abc", b"de", END]
    assert reader.started
    assert buf == b"GET / HTTP/1.1\r\n"  # the next request is left alone
    assert reader.next(buf, eof=False) is END


def test_one_byte_at_a_time() -> None:
    data = b"a\r\n0123456789\r\n0\r\n\r\n"
    reader = _reader()
    buf = bytearray()
    body = b""
    for byte in data:
        buf.append(byte)
        while (piece := reader.next(buf, eof=False)) is not None and piece is not END:
            assert isinstance(piece, bytes)
            body += piece
    assert body == b"0123456789"
    assert reader.next(buf, eof=False) is END


def test_body_limit_refused_from_the_chunk_size() -> None:
    reader = _reader(max_body=5)
    buf = bytearray(b"3\r\nabc\r\n3\r\n")
    assert reader.next(buf, eof=False) == b"abc"
    with pytest.raises(RemoteProtocolError) as info:
        reader.next(buf, eof=False)
    assert info.value.status_hint == 413


def test_size_line_limit_allows_exactly_the_maximum() -> None:
    line = b"1;x=" + b"a" * (MAX_CHUNK_LINE - 4)
    assert len(line) == MAX_CHUNK_LINE
    reader = _reader()
    buf = bytearray(line + b"\r")  # the LF is still to come: not too long yet
    assert reader.next(buf, eof=False) is None
    buf += b"\nz\r\n"
    assert reader.next(buf, eof=False) == b"z"
    reader = _reader()
    with pytest.raises(RemoteProtocolError):
        reader.next(bytearray(line + b"a\r\n"), eof=False)


def test_trailer_limits_are_431() -> None:
    reader = _reader()
    with pytest.raises(RemoteProtocolError) as info:
        _read_all(reader, bytearray(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"))
    assert info.value.status_hint == 431
    reader = _reader()
    with pytest.raises(RemoteProtocolError) as info:
        _read_all(reader, bytearray(b"0\r\nA: " + b"x" * 200 + b"\r\n\r\n"))
    assert info.value.status_hint == 431


@pytest.mark.parametrize("data", [b"", b"3\r\nab", b"3\r\nabc", b"3\r\nabc\r\n", b"0\r\n"])
def test_eof_before_the_end_is_an_error(data: bytes) -> None:
    reader = _reader()
    buf = bytearray(data)

    def read_to_the_end() -> None:
        while reader.next(buf, eof=True) is not END:
            pass

    with pytest.raises(RemoteProtocolError):
        read_to_the_end()


@pytest.mark.parametrize(
    "field",
    [
        b"Vary: Accept",
        b"Content-Type: text/plain",
        b"X-Checksum:\tsha256=abc\t",
        b"Authorization: Bearer x",
        b"Cookie: a=1",
        b"Expect: 100-continue",
        b"Content-Encoding: gzip",
        b"X-Empty:",
    ],
)
def test_harmless_trailer_fields_are_dropped(field: bytes) -> None:
    # issue 10: only framing, routing and connection fields are refused in trailers
    reader = ChunkedReader(None, max_trailer_size=200, max_trailer_count=3)
    buf = bytearray(b"2\r\nok\r\n0\r\n" + field + b"\r\nX-More: 1\r\n\r\nNEXT")
    assert _read_all(reader, buf) == [b"ok", END]
    assert buf == b"NEXT"


@pytest.mark.parametrize(
    "name",
    [
        b"Content-Length",
        b"transfer-encoding",
        b"Trailer",
        b"HOST",
        b"Connection",
        b"Keep-Alive",
        b"Upgrade",
        b"TE",
    ],
)
def test_framing_routing_and_connection_trailers_are_refused(name: bytes) -> None:
    reader = _reader()
    with pytest.raises(RemoteProtocolError) as info:
        _read_all(reader, bytearray(b"0\r\nX-Ok: 1\r\n" + name + b": 0\r\n\r\n"))
    assert info.value.status_hint == 400
