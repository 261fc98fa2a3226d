"""A cotyledon program made to run under systemd as a ``Type=notify`` service.

Run it with the unit files of this directory, or by hand::

    systemd-run --user -p Type=notify -p NotifyAccess=main \\
        python examples/systemd/notify_service.py --workers 2

The master tells systemd when every worker is up (``READY=1``), around reloads
(``systemctl reload``), at shutdown and, with ``WatchdogSec=``, that it is alive. The
workers use :mod:`cotyledon.systemd` to add a status line and to report their health.

Options (the test-suite drives them too):

``--workers N``       workers of the one service (default 2)
``--init-delay S``    seconds each worker spends in ``__init__`` (a slow application import)
``--status TEXT``     each worker relays ``STATUS=TEXT`` through the master once started
``--health-file P``   each worker reads P every 50 ms: ``fail <why>`` reports it unhealthy
                      (the master stops the watchdog pings), ``ok`` healthy again
``--show-env``        each worker runs a subprocess that prints the systemd variables it sees
``--hold-file P``     each worker waits in ``__init__`` while P exists (holds a reload open)
``--slow-stop S``     each worker takes S seconds to terminate (a long graceful drain)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import cotyledon
from cotyledon import systemd

ENV_KEYS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
)
# Run in a subprocess: prints which of ENV_KEYS (its arguments) it inherited, as JSON.
SHOW_ENV = (
    "import json, os, sys; "
    "print('child-env', json.dumps([k for k in sys.argv[1:] if k in os.environ]))"
)


def say(line: str) -> None:
    """One whole line per write: workers share stdout, and the tests read it."""
    os.write(1, line.encode() + b"\n")


class Worker(cotyledon.Service):
    name = "notify-demo"

    def __init__(self, worker_id: int, options: argparse.Namespace) -> None:
        super().__init__(worker_id)
        self.options = options
        self.stopped = threading.Event()
        time.sleep(options.init_delay)  # stands for a slow application start
        while options.hold_file and os.path.exists(options.hold_file):
            time.sleep(0.05)
        # The readiness stamp: the master may only send READY=1 after this line.
        say(f"worker {worker_id} ready pid={os.getpid()} at={time.monotonic():.6f}")

    def run(self) -> None:
        if self.options.show_env:
            out = subprocess.run(
                [sys.executable, "-c", SHOW_ENV, *ENV_KEYS],
                capture_output=True,
                text=True,
                check=True,
            )
            say(f"{out.stdout.strip()} worker={self.worker_id}")
        if self.options.status:
            sent = systemd.notify(status=self.options.status, X_WORKER=self.worker_id)
            say(f"worker {self.worker_id} status relayed={sent}")
        if self.options.health_file:
            self.watch_health(self.options.health_file)

    def watch_health(self, path: str) -> None:
        last = "ok"
        while not self.stopped.wait(0.05):
            try:
                with open(path) as f:
                    wanted = f.read().strip() or "ok"
            except FileNotFoundError:
                wanted = "ok"
            if wanted != last:
                ok = wanted == "ok"
                systemd.set_health(ok, "" if ok else wanted.partition(" ")[2])
                say(f"worker {self.worker_id} health {wanted}")
                last = wanted

    def terminate(self) -> None:
        self.stopped.set()
        if self.options.slow_stop:
            say(f"worker {self.worker_id} draining for {self.options.slow_stop}s")
            time.sleep(self.options.slow_stop)  # stands for finishing in-flight work


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--init-delay", type=float, default=0.0)
    parser.add_argument("--status")
    parser.add_argument("--health-file")
    parser.add_argument("--show-env", action="store_true")
    parser.add_argument("--slow-stop", type=float, default=0.0)
    parser.add_argument("--hold-file")
    parser.add_argument("--graceful-timeout", type=float, default=30)
    return parser.parse_args(argv)


def main() -> None:
    options = parse_args()
    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=options.graceful_timeout)
    manager.add(Worker, workers=options.workers, args=(options,))
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
