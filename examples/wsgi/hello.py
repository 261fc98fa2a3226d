"""The smallest WSGI app: ``cotyledon-wsgi --workers 2 examples.wsgi.hello:app``.

GET / answers ``200 Hello, World!``; the benchmark's hello-world app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"Hello, World!\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
