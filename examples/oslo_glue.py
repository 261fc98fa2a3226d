"""oslo.config glue: options registered, logged, and reloaded on SIGHUP in the master and
in every worker.

    python examples/oslo_glue.py CONFIG_FILE [reload|mutate]

The config file sets ``greeting`` (a mutable option of this example) in ``[DEFAULT]``.
Edit it and send SIGHUP: the master and the worker print the new value.
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging
from oslo_config import cfg

import cotyledon
from cotyledon import oslo_config_glue

CONF = cfg.ConfigOpts()
CONF.register_opts([cfg.StrOpt("greeting", default="hi", mutable=True)])


class Greeter(cotyledon.Service):
    name = "greeter"

    def __init__(self, worker_id: int, conf: cfg.ConfigOpts) -> None:
        super().__init__(worker_id)
        self.conf = conf
        self._stop = threading.Event()

    def run(self) -> None:
        say(f"worker greeting={self.conf.greeting} pid={os.getpid()}")
        self._stop.wait()

    def terminate(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        say(f"worker reloaded greeting={self.conf.greeting}")


def main() -> None:
    setup_logging()
    CONF([], project="example", default_config_files=[sys.argv[1]])
    method = sys.argv[2] if len(sys.argv) > 2 else "reload"
    manager = cotyledon.ServiceManager()
    oslo_config_glue.setup(manager, CONF, reload_method=method)
    manager.add(Greeter, args=(CONF,))
    manager.register_hooks(on_reload=lambda: say(f"master greeting={CONF.greeting}"))
    say(f"master timeout={manager._graceful_shutdown_timeout}")
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
