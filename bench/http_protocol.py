"""Micro-benchmark of the sans-IO HTTP layer: parse + respond, keep-alive, in one process.

For each parser, N requests go through one keep-alive connection: receive the request bytes,
read events to the end of the message, build a small response (head, body, end), start the
next cycle.  No sockets: this is the protocol's own cost per request, the floor under what
the server can do.  Compared: our ServerConnection, h11 (pure Python), and raw httptools
callbacks with no semantics (a lower bound, not a server).

    .venv/bin/python bench/http_protocol.py [--requests 100000] [--repeat 5]

Rates are in process CPU time (the protocol is CPU-bound and the machine may be shared).
It prints figures; nothing here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable

import h11
import httptools

from cotyledon.wsgi._http_events import Request
from cotyledon.wsgi._http_protocol import ServerConnection

# A browser-like GET (9 header fields, ~450 bytes), as in the parser survey.
REQUEST = (
    b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"\r\n"
)
SMALL_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n\r\n"
BODY = b"Hello, World!\n"
HEADERS = [
    (b"Content-Type", b"text/plain"),
    (b"Content-Length", b"%d" % len(BODY)),
    (b"Date", b"Tue, 24 Nov 2026 12:00:00 GMT"),
    (b"Server", b"cotyledon"),
]


def ours(n: int, request: bytes) -> int:
    conn = ServerConnection()
    sent = 0
    for _ in range(n):
        conn.receive_data(request)
        event = conn.next_event()
        assert type(event) is Request
        conn.next_event()  # EndOfMessage
        out = conn.send_response(200, HEADERS) + conn.send_data(BODY) + conn.send_end()
        sent += len(out)
        conn.start_next_cycle()
    return sent


H11_HEADERS = [(name.decode(), value.decode()) for name, value in HEADERS]


def with_h11(n: int, request: bytes) -> int:
    conn = h11.Connection(h11.SERVER)
    sent = 0
    for _ in range(n):
        conn.receive_data(request)
        event = conn.next_event()
        assert type(event) is h11.Request
        conn.next_event()  # EndOfMessage
        out = conn.send(h11.Response(status_code=200, headers=H11_HEADERS))
        out += conn.send(h11.Data(data=BODY))  # type: ignore[operator]
        out += conn.send(h11.EndOfMessage())  # type: ignore[operator]
        sent += len(out)  # type: ignore[arg-type]
        conn.start_next_cycle()
    return sent


class _Raw:
    """httptools with no semantics: the parse floor."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.done = True


def raw_httptools(n: int, request: bytes) -> int:
    sink = _Raw()
    parser = httptools.HttpRequestParser(sink)
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"%s: %s\r\n" % h for h in HEADERS) + b"\r\n"
    sent = 0
    for _ in range(n):
        sink.headers = []
        parser.feed_data(request)
        sent += len(head + BODY)
    return sent


PARSERS: dict[str, Callable[[int, bytes], int]] = {
    "cotyledon (ServerConnection)": ours,
    "h11 0.16": with_h11,
    "httptools raw (floor, no semantics)": raw_httptools,
}


def measure(fn: Callable[[int, bytes], int], n: int, repeat: int, request: bytes) -> list[float]:
    rates = []
    fn(min(n, 1000), request)  # warm up
    for _ in range(repeat):
        gc.collect()
        # CPU time of this process: the machine may be shared, the protocol is CPU-bound
        start = time.process_time()
        fn(n, request)
        rates.append(n / (time.process_time() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} ({sys.implementation.name}), ", end="")
    print(f"httptools {httptools.__version__}, h11 {h11.__version__}")
    print(f"{args.requests} keep-alive requests per run, best and median of {args.repeat}")
    for label, request in (("browser-like GET", REQUEST), ("wrk-like GET", SMALL_REQUEST)):
        print(f"\n{label} ({len(request)} bytes), {len(BODY)}-byte response")
        print(f"{'parser':40} {'best req/s':>12} {'median':>12} {'us/req':>8}")
        results = {}
        for name, fn in PARSERS.items():
            rates = measure(fn, args.requests, args.repeat, request)
            results[name] = max(rates)
            best, median = max(rates), statistics.median(rates)
            print(f"{name:40} {best:12,.0f} {median:12,.0f} {1e6 / best:8.2f}")
        ratio = results["cotyledon (ServerConnection)"] / results["h11 0.16"]
        print(f"ours / h11: {ratio:.1f}x")


if __name__ == "__main__":
    main()
