"""The master's graceful shutdown is bounded, even when a worker never stops.

    python examples/timeout.py

The service's own timeout is 0 (wait forever) and its terminate() hangs; the manager's
timeout is 2 s: on SIGTERM the master waits 2 s, SIGKILLs the worker and exits 1.
"""

from __future__ import annotations

import os
import threading

from _common import say, setup_logging

import cotyledon


class Stubborn(cotyledon.Service):
    name = "stubborn"
    graceful_shutdown_timeout = 0

    def run(self) -> None:
        say(f"stubborn running pid={os.getpid()}")

    def terminate(self) -> None:
        say("stubborn ignores terminate")
        threading.Event().wait()


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=2)
    manager.add(Stubborn)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
