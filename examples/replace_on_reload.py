"""Progressive replacement on SIGHUP: a new worker starts before the old one stops.

``python examples/replace_on_reload.py`` then ``kill -HUP <master pid>``. Each worker
prints when it is built ("ready": what the master waits for), when it runs, and when it
is told to stop: after a SIGHUP, for every slot, the new worker's "ready" line comes
before the old worker's "terminating" line, so the service never has fewer than 3
workers running. With ``BROKEN_ON_RELOAD=<file>``, a
worker started while that file exists fails in its constructor: the replacement is
aborted and the old workers keep running.
"""

from __future__ import annotations

import os
import threading

from _common import say, setup_logging

import cotyledon


class Queue(cotyledon.Service):
    name = "queue"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        broken = os.environ.get("BROKEN_ON_RELOAD")
        if broken and os.path.exists(broken):
            raise RuntimeError("the new configuration is broken")
        self._stop = threading.Event()
        say(f"queue {worker_id} ready pid={os.getpid()}")

    def run(self) -> None:
        say(f"queue {self.worker_id} running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        say(f"queue {self.worker_id} terminating pid={os.getpid()}")
        self._stop.set()


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager()
    manager.add(Queue, workers=3, reload="replace", max_surge=1, start_timeout=30)
    manager.run()


if __name__ == "__main__":
    main()
