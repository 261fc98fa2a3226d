"""A JSON API app (the benchmark's JSON case): ``cotyledon-wsgi examples.wsgi.json_app:app``.

``GET /`` returns a small JSON document; ``POST /echo`` returns the JSON body it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def _reply(start_response: Callable[..., Any], status: str, data: object) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/echo" and environ["REQUEST_METHOD"] == "POST":
        try:
            data = json.loads(environ["wsgi.input"].read() or b"null")
        except ValueError:
            return _reply(start_response, "400 Bad Request", {"error": "invalid JSON"})
        return _reply(start_response, "200 OK", {"echo": data})
    return _reply(
        start_response,
        "200 OK",
        {"message": "Hello, World!", "path": environ["PATH_INFO"], "items": list(range(10))},
    )
