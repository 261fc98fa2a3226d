"""An app that waits 10 ms per request, like one database call (the benchmark's I/O case).

``cotyledon-wsgi --threads 8 examples.wsgi.sleep_app:app``; ``?ms=N`` changes the wait.
The ``X-Worker-Pid`` header says which worker process answered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    milliseconds = float(query.get("ms", ["10"])[0])
    time.sleep(milliseconds / 1000)
    body = b"slept %g ms\n" % milliseconds
    headers = [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
    ]
    start_response("200 OK", headers)
    return [body]
