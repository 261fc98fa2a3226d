"""Drive a request byte stream through our protocol, or through h11, like a tiny server.

Both runners answer every complete request with an empty 200 and go on while the connection
may be kept alive, so pipelined requests are read one after the other.  They return an
``Outcome``: the requests read (method, target, version, headers, body) and how the stream
ended (an error status, or None when the peer closed or the connection was not kept alive).
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterable, Iterator

import h11

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
from cotyledon.wsgi._http_protocol import Limits, ServerConnection


@dataclasses.dataclass(frozen=True)
class ReadRequest:
    method: bytes
    target: bytes
    version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Outcome:
    requests: tuple[ReadRequest, ...]
    #: the status_hint of the error that stopped reading, or None
    error: int | None


def pieces(data: bytes, mode: str, seed: int = 0) -> list[bytes]:
    """Split ``data`` the way a network might: whole, lines, bytes, random chunks."""
    if mode == "whole":
        return [data]
    if mode == "lines":
        return [line for line in data.splitlines(keepends=True) if line]
    if mode == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    assert mode == "random", mode
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 16)
        out.append(data[i : i + n])
        i += n
    return out


FEED_MODES = ("whole", "lines", "bytes", "random")


def seed_for(name: str) -> int:
    """A stable seed per case, so a failure replays the same chunks."""
    return zlib.crc32(name.encode())


def _events(conn: ServerConnection, feed: Iterator[bytes]) -> Iterator[object]:
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(next(feed, b""))
            continue
        yield event


def run_ours(chunks: Iterable[bytes], limits: Limits | None = None) -> Outcome:
    """Read every request ``chunks`` hold (then EOF) with our ``ServerConnection``."""
    conn = ServerConnection(limits or Limits())
    feed = iter(chunks)
    requests: list[ReadRequest] = []
    current: Request | None = None
    body = bytearray()
    try:
        for event in _events(conn, feed):
            if isinstance(event, Request):
                assert current is None, "a Request while another is being read"
                current, body = event, bytearray()
            elif isinstance(event, Data):
                assert current is not None
                assert event.data, "empty Data event"
                body += event.data
            elif isinstance(event, EndOfMessage):
                assert current is not None
                requests.append(
                    ReadRequest(
                        current.method,
                        current.target,
                        current.http_version,
                        current.headers,
                        bytes(body),
                    )
                )
                current = None
                assert conn.next_event() is PAUSED
                conn.send_response(200, [(b"Content-Length", b"0")])
                conn.send_end()
                if not conn.keep_alive:
                    return Outcome(tuple(requests), None)
                conn.start_next_cycle()
            else:
                assert isinstance(event, ConnectionClosed), event
                assert current is None
                return Outcome(tuple(requests), None)
    except RemoteProtocolError as exc:
        return Outcome(tuple(requests), exc.status_hint)
    raise AssertionError("unreachable")


def run_h11(data: bytes, max_incomplete_event_size: int = 65536) -> Outcome:
    """Read every request ``data`` holds (then EOF) with h11, the referee."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
    conn.receive_data(data)
    conn.receive_data(b"")
    requests: list[ReadRequest] = []
    current: h11.Request | None = None
    body = bytearray()
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                current, body = event, bytearray()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert current is not None
                requests.append(
                    ReadRequest(
                        current.method,
                        current.target,
                        current.http_version,
                        tuple((name, value) for name, value in current.headers),
                        bytes(body),
                    )
                )
                current = None
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return Outcome(tuple(requests), None)
                conn.start_next_cycle()
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return Outcome(tuple(requests), None)
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")
    except h11.RemoteProtocolError as exc:
        return Outcome(tuple(requests), exc.error_status_hint)
    except h11.LocalProtocolError:
        # h11 refuses to respond in some states (e.g. after a 1.0 request without keep-alive)
        return Outcome(tuple(requests), None)


__all__ = [
    "FEED_MODES",
    "LocalProtocolError",
    "Outcome",
    "ReadRequest",
    "pieces",
    "run_h11",
    "run_ours",
    "seed_for",
]
