"""Many workers: ``python examples/many.py N`` starts N workers of one service."""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon


class Idle(cotyledon.Service):
    name = "idle"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"idle {self.worker_id} running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()


def main() -> None:
    setup_logging(int(os.environ.get("LOG_LEVEL", "10")))
    manager = cotyledon.ServiceManager()
    manager.add(Idle, workers=int(sys.argv[1]) if len(sys.argv) > 1 else 4)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
