"""Many workers: ``python examples/many.py N`` starts N workers of one service.

``LOG_LEVEL=20`` quiets the DEBUG lines; ``TICK=1`` makes worker 0 print ``tick <n>``
every 0.1 s (something to wait on while watching that the master stays asleep).
"""

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
        ticks = 0
        while os.environ.get("TICK") and self.worker_id == 0 and not self._stop.wait(0.1):
            ticks += 1
            say(f"tick {ticks}")
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
