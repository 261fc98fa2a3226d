"""Drop-in with cotyledon 2.2, with real processes: where the default start method is
forkserver (Python 3.14), a manager built without a context reports that default context
(as 2.2 did) and still forks its workers directly (spec/api.md, top and section 7)."""

from __future__ import annotations

import signal
import sys

import pytest

from tests.support.processes import wait_for

PROGRAM = """
import multiprocessing, os, threading
import cotyledon

class Svc(cotyledon.Service):
    def __init__(self, worker_id):
        super().__init__(worker_id)
        self._stop = threading.Event()

    def run(self):
        print(f"worker {self.worker_id} pid={os.getpid()} ppid={os.getppid()}", flush=True)
        self._stop.wait()

    def terminate(self):
        self._stop.set()

multiprocessing.set_start_method("forkserver")  # Python 3.14's default on Linux
manager = cotyledon.ServiceManager()
assert manager.mp_context is multiprocessing.get_context()
print(f"master pid={os.getpid()} context={manager.mp_context.get_start_method()}", flush=True)
manager.add(Svc, workers=2)
manager.run()
"""


@pytest.mark.timeout(60)
def test_default_forkserver_context_still_forks_directly(program) -> None:  # type: ignore[no-untyped-def]
    prog = program([sys.executable, "-c", PROGRAM])
    first = prog.wait_line(r"^master pid=(\d+) context=(\w+)$")
    pid = int(first.group(1))
    assert first.group(2) == "forkserver"
    for _ in range(2):
        match = prog.wait_line(r"^worker \d pid=(\d+) ppid=(\d+)$")
        assert int(match.group(2)) == pid  # forked by the master, not by a fork server
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    wait_for(lambda: not prog.descendants(), what="no fork server left behind")
