"""A service that takes a while to build: signals sent meanwhile wait for it.

    python examples/slow_start.py

The worker prints "building" then spends a second in __init__. SIGTERM the master during
that second: the worker finishes building, then stops gracefully; nothing hangs.
"""

from __future__ import annotations

import os
import threading
import time

from _common import say, setup_logging

import cotyledon


class Slow(cotyledon.Service):
    name = "slow"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        say(f"building pid={os.getpid()}")
        time.sleep(1.0)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"slow running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        say("slow terminating")
        self._stop.set()


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager()
    manager.add(Slow, workers=2)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
