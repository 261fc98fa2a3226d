"""A WSGI app served next to another service in one ServiceManager.

Run: ``python examples/wsgi/with_service.py [bind]`` (default ``127.0.0.1:8000``). The
``Ticker`` service counts in its own worker; the web workers answer ``GET /``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import cotyledon
import cotyledon.wsgi


class Ticker(cotyledon.Service):
    """A background service: prints a line every second until stopped."""

    name = "ticker"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        count = 0
        print(f"ticker {self.worker_id} started", flush=True)
        while not self._stop.wait(1.0):
            count += 1

    def terminate(self) -> None:
        self._stop.set()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"served next to a ticker\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bind = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    manager = cotyledon.ServiceManager()
    manager.add(Ticker, workers=1)
    cotyledon.wsgi.add(manager, app, bind=[bind], workers=2, threads=4)
    manager.run()


if __name__ == "__main__":
    main()
