"""Stop the whole manager when one special service dies (upstream issue #21), or from
another thread.

    python examples/shutdown.py hook|thread

``hook``: the on_dead_worker hook calls manager.shutdown() when the "oneshot" service
exits. ``thread``: a thread calls shutdown() once every worker runs, then calls it again
after run() has ended (it must neither hang nor kill the process).
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon


class OneShot(cotyledon.Service):
    name = "oneshot"

    def run(self) -> None:
        say(f"oneshot done pid={os.getpid()}")
        raise SystemExit(0)


class Waiter(cotyledon.Service):
    name = "waiter"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"waiter running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()


def main() -> None:
    setup_logging()
    mode = sys.argv[1]
    manager = cotyledon.ServiceManager()
    manager.add(Waiter)
    if mode == "hook":
        oneshot = manager.add(OneShot)

        def on_dead_worker(service_id: object, worker_id: int, exit_code: int) -> None:
            if service_id == oneshot:
                manager.shutdown()

        manager.register_hooks(on_dead_worker=on_dead_worker)
    else:
        threading.Timer(0.5, manager.shutdown).start()
    say(f"master pid={os.getpid()}")
    try:
        manager.run()
    except SystemExit as exc:
        say(f"run() ended with SystemExit({exc.code})")
        manager.shutdown()
        say("second shutdown returned")
        raise


if __name__ == "__main__":
    main()
