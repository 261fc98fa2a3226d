"""A heavier WSGI app for memory figures: a few stdlib packages imported and an 8 MB
table built at import time, read by every request (so it stays in use)."""

from __future__ import annotations

import decimal
import email.parser
import http.client
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

#: About 8 MB (tracemalloc) of small objects (ints, strings, tuples), built at import.
TABLE = {f"key-{i}": (i, str(i) * 3, decimal.Decimal(i) / 7) for i in range(20_000)}
_PARSER = email.parser.HeaderParser()
_STATUS = http.client.responses
_XML = ET.fromstring("<root><item id='1'/></root>")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    key = f"key-{len(environ.get('PATH_INFO', '')) % len(TABLE)}"
    body = json.dumps({"status": _STATUS[200], "value": TABLE[key][1], "xml": _XML.tag})
    data = body.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
