"""A WSGI app with the lifecycle settings a production deployment uses, from Python.

Run: ``python examples/wsgi/lifecycle.py [bind] [status port]`` (default
``127.0.0.1:8000`` and ``8001``), then open http://127.0.0.1:8001/ for the status page.
``kill -HUP <master pid>`` replaces the workers one by one; ``kill -TTIN`` adds one.
The same settings on the command line::

    cotyledon-wsgi -w 2 --max-requests 1000 --max-requests-jitter 100 --max-memory 256M \\
        --timeout 30 --status-port 8001 --access-log-file - examples.wsgi.hello:app
"""

from __future__ import annotations

import logging
import sys

import cotyledon
import cotyledon.wsgi


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bind = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    status_port = int(sys.argv[2]) if len(sys.argv) > 2 else 8001
    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=40)
    cotyledon.wsgi.add(
        manager,
        "examples.wsgi.hello:app",
        bind=[bind],
        workers=2,
        threads=8,
        max_requests=1000,  # replace a worker after 1000-1100 requests
        max_requests_jitter=100,
        max_memory=256 << 20,  # ... or when its own memory passes 256 MiB
        timeout=30,  # a worker silent for 30 s: stacks dumped, killed, replaced
        graceful_timeout=30,  # a stopping worker has 30 s to finish its requests
        status_port=status_port,  # HTML, /json, /metrics, /_sysinfo on 127.0.0.1
        access_log_file="-",
    )
    manager.run()


if __name__ == "__main__":
    main()
