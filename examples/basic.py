"""Basic example: two services, three workers, graceful shutdown on SIGTERM.

Run it, then ``kill -TERM <master pid>`` (or Ctrl-C). Every worker prints a line when it
starts, so tests can synchronise on it; the library's own lines are logged at DEBUG.
"""

from __future__ import annotations

import os
import threading

from _common import say, setup_logging

import cotyledon


class Ticker(cotyledon.Service):
    """Waits until terminate() is called."""

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"ticker {self.worker_id} running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        say(f"ticker {self.worker_id} terminating pid={os.getpid()}")
        self._stop.set()


class Printer(cotyledon.Service):
    name = "printer"

    def run(self) -> None:
        say(f"printer {self.worker_id} running pid={os.getpid()}")


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager()
    manager.add(Ticker, workers=2)
    manager.add(Printer)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
