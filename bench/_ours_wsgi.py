"""Fallback launcher for our WSGI server while the ``cotyledon-wsgi`` CLI cannot serve yet.

Serves ``apps:<name>`` on an inherited listening socket through the public
``cotyledon.wsgi.WSGIService`` with the same settings as ``-w 2 -t 8``. The throughput
and reload benchmarks use it only when the CLI's modules are missing, and say so.
Usage: python _ours_wsgi.py FD WORKERS THREADS APP
"""

from __future__ import annotations

import logging
import socket
import sys

import apps

import cotyledon
from cotyledon.wsgi import ServerConfig, WSGIService


def main() -> None:
    fd, workers, threads, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    listener = socket.socket(fileno=fd)
    config = ServerConfig(workers=workers, threads=threads)
    manager = cotyledon.ServiceManager()
    manager.add(WSGIService, workers=workers, args=(getattr(apps, name), config, [listener]))
    manager.run()


if __name__ == "__main__":
    main()
