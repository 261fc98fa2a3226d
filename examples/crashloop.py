"""A crash-looping service beside a healthy one.

    python examples/crashloop.py [--give-up R T]

The crash-looper is backed off on its own (a deadline, never a sleep): the healthy
service keeps running and answering SIGHUP. With ``--give-up R T`` the manager stops with
exit status 3 once the crash-looper restarted more than R times within T seconds.
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon


class Crasher(cotyledon.Service):
    name = "crasher"

    def run(self) -> None:
        say(f"crasher started pid={os.getpid()}")
        raise SystemExit(7)


class Healthy(cotyledon.Service):
    name = "healthy"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"healthy running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        say(f"healthy reloaded pid={os.getpid()}")


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager()
    if "--give-up" in sys.argv:
        i = sys.argv.index("--give-up")
        restarts, period = int(sys.argv[i + 1]), float(sys.argv[i + 2])
        manager.add(Crasher, max_restarts=restarts, restart_period=period)
    else:
        manager.add(Crasher)
    manager.add(Healthy)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
