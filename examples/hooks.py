"""Hooks and exit statuses: every hook prints when it runs; the service's behaviour is
chosen on the command line.

    python examples/hooks.py [run-exit N | run-raise | term-exit N | term-raise | ok]

``run-exit N``: run() raises SystemExit(N) (the worker exits N, and is respawned).
``run-raise``: run() raises (exit 2). ``term-exit N`` / ``term-raise``: the same in
terminate(). ``ok``: nothing special.
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
CODE = int(sys.argv[2]) if len(sys.argv) > 2 else 0


class Hooked(cotyledon.Service):
    name = "hooked"

    def __init__(self, worker_id: int, greeting: str) -> None:
        super().__init__(worker_id)
        self.greeting = greeting
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"run {self.greeting} worker={self.worker_id} pid={os.getpid()}")
        if MODE == "run-exit":
            raise SystemExit(CODE)
        if MODE == "run-raise":
            raise RuntimeError("run failed")
        self._stop.wait()

    def terminate(self) -> None:
        say(f"terminate worker={self.worker_id}")
        self._stop.set()
        if MODE == "term-exit":
            raise SystemExit(CODE)
        if MODE == "term-raise":
            raise RuntimeError("terminate failed")


def on_terminate() -> None:
    say("hook on_terminate")


def on_reload() -> None:
    say("hook on_reload")


def on_new_worker(service_id: object, worker_id: int, service: cotyledon.Service) -> None:
    say(f"hook on_new_worker worker={worker_id} service={type(service).__name__}")


def on_dead_worker(service_id: object, worker_id: int, exit_code: int) -> None:
    say(f"hook on_dead_worker worker={worker_id} exit_code={exit_code}")


def failing_hook() -> None:
    raise ValueError("hook failed")


def never_called() -> None:
    say("hook never_called")


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager()
    manager.add(Hooked, workers=1, args=("hello",))
    manager.register_hooks(on_terminate=on_terminate, on_reload=on_reload)
    manager.register_hooks(on_new_worker=on_new_worker, on_dead_worker=on_dead_worker)
    # A failing hook stops the remaining hooks of its kind and is logged.
    manager.register_hooks(on_reload=failing_hook)
    manager.register_hooks(on_reload=never_called)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
