"""Workers never outlive their master, even when the service forks a process itself.

    python examples/seatbelt.py [hang]

The worker forks a grandchild (which keeps running until the worker's terminate() stops
it). SIGKILL the master: the worker sees its master gone (seatbelt pipe EOF or
PR_SET_PDEATHSIG), logs it and stops gracefully. With ``hang``, terminate() never returns
and the service timeout is 0: the worker is still bounded by the manager's timeout (2 s).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

from _common import say, setup_logging

import cotyledon

HANG = "hang" in sys.argv


class Forker(cotyledon.Service):
    name = "forker"
    graceful_shutdown_timeout = 0 if HANG else None

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._stop = threading.Event()
        # PR_GET_PDEATHSIG, from the main thread (the setting is per thread; new threads
        # start without it, but the kernel signals the whole process when any has it).
        sig = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)
        say(f"pdeathsig={sig.value}")
        # Forked here, while the worker is still single-threaded (terminate() cannot run
        # before __init__ returns). Like any careful forker: block SIGTERM around the
        # fork, give the child the default action (not the worker's handler and wakeup
        # pipe), then unblock.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            while True:
                signal.pause()  # until the worker's SIGTERM kills us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        self.grandchild = pid

    def run(self) -> None:
        say(f"worker pid={os.getpid()} grandchild pid={self.grandchild}")
        self._stop.wait()

    def terminate(self) -> None:
        say(f"worker terminating pid={os.getpid()}")
        if self.grandchild:
            os.kill(self.grandchild, signal.SIGTERM)
            os.waitpid(self.grandchild, 0)
        if HANG:
            threading.Event().wait()
        self._stop.set()


def main() -> None:
    setup_logging()
    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=2)
    manager.add(Forker)
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
