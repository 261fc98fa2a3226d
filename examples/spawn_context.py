"""Workers started through a multiprocessing spawn or forkserver context (what
oslo.service does when asked for spawn): the service class, its args and the new-worker
hooks are pickled; the master still learns of their exit at once and respawns them.

    python examples/spawn_context.py spawn|forkserver|fork
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

from _common import say, setup_logging

import cotyledon


class Spawned(cotyledon.Service):
    name = "spawned"

    def __init__(self, worker_id: int, label: str) -> None:
        super().__init__(worker_id)
        self.label = label
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"{self.label} {self.worker_id} running pid={os.getpid()} ppid={os.getppid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()


def on_new_worker(service_id: object, worker_id: int, service: cotyledon.Service) -> None:
    say(f"hook on_new_worker worker={worker_id}")


def main() -> None:
    setup_logging()
    method = sys.argv[1]
    manager = cotyledon.ServiceManager(mp_context=multiprocessing.get_context(method))
    manager.add(Spawned, workers=2, args=(method,))
    manager.register_hooks(on_new_worker=on_new_worker)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__":
    # A spawned worker re-imports this file under this name without running main():
    # configure its logging here.
    setup_logging()
