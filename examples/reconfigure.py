"""reconfigure() and add() take effect at once, even from a hook.

    python examples/reconfigure.py up|down|add|flap

On SIGHUP the on_reload hook changes the configuration: ``up`` raises the workers from 2
to 4, ``down`` lowers them to 1 (the surplus workers stop and are not respawned),
``add`` adds a second service, ``flap`` raises them to 6 and at once back to 2 (the
master SIGTERMs workers it has just forked). The services reload in place (no respawn on SIGHUP).
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon


class Steady(cotyledon.Service):
    name = "steady"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"{self.name} {self.worker_id} running pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        say(f"{self.name} {self.worker_id} reloaded pid={os.getpid()}")


class Extra(Steady):
    name = "extra"


def main() -> None:
    setup_logging()
    mode = sys.argv[1]
    manager = cotyledon.ServiceManager()
    sid = manager.add(Steady, workers=2)

    def on_reload() -> None:
        if mode == "up":
            manager.reconfigure(sid, 4)
        elif mode == "down":
            manager.reconfigure(sid, 1)
        elif mode == "flap":
            manager.reconfigure(sid, 6)
            manager.reconfigure(sid, 2)
        else:
            manager.add(Extra, workers=2)
        say(f"reconfigured {mode}")

    manager.register_hooks(on_reload=on_reload)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
