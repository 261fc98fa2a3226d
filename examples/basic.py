"""Basic example: two services, three workers, graceful shutdown on SIGTERM.

Run it, then ``kill -TERM <master pid>`` (or Ctrl-C). Every worker prints a line when it
starts, so tests can synchronise on it; the library's own lines are logged at DEBUG.
With ``NEIGHBOUR=1`` the program also starts a ``sleep`` of its own before run(), in the
same process group: the manager must neither signal it nor reap it.
"""

from __future__ import annotations

import os
import subprocess
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
    if os.environ.get("NEIGHBOUR"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        neighbour = subprocess.Popen(["sleep", "120"], **quiet)
        say(f"neighbour pid={neighbour.pid}")
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
