"""Streaming and file responses: chunked output, ``write()`` and ``wsgi.file_wrapper``.

``/stream`` yields three chunks with no Content-Length (sent chunked), ``/write`` uses the
``write()`` callable, ``/file`` serves this very file through ``wsgi.file_wrapper``
(``sendfile``), ``/upload`` answers the size of the (possibly chunked) request body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _stream() -> Iterator[bytes]:
    for number in range(3):
        yield b"chunk %d\n" % number


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written\n")
        return [b"returned\n"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))
    if path == "/upload":
        size = len(environ["wsgi.input"].read())
        body = b"%d\n" % size
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
