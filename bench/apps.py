"""The WSGI apps every server is benchmarked with (plain PEP 3333, stdlib only).

``hello``: a fixed 13-byte body. ``json_app``: a small object serialised per request.
``sleep_app``: 10 ms of blocking sleep, a stand-in for an app waiting on a database.
No server-specific code here, so every server runs the exact same callables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]

HELLO = b"Hello, world!"


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def json_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps(
        {
            "path": environ.get("PATH_INFO", ""),
            "method": environ.get("REQUEST_METHOD", ""),
            "items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(10)],
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def sleep_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]
