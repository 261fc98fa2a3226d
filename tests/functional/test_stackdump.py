"""A worker wedged in a GIL-holding loop still dumps its stacks when the master asks."""

from __future__ import annotations

import signal
import sys

import pytest

from cotyledon.wsgi._stackdump import DUMP_SIGNAL
from tests.support.processes import Program

WEDGED = r"""
import threading
from cotyledon.wsgi import _stackdump

def spin_forever_in_python():
    print("armed", flush=True)
    while True:
        pass

def idle_helper():
    threading.Event().wait()

_stackdump.arm()
threading.Thread(target=idle_helper, name="helper", daemon=True).start()
spin_forever_in_python()
"""


@pytest.mark.timeout(60)
def test_dump_signal_writes_every_thread_stack(program: type[Program]) -> None:
    worker = program([sys.executable, "-c", WEDGED])
    worker.wait_line("^armed$")
    worker.signal(DUMP_SIGNAL)
    worker.wait_line(r"most recent call first")
    # Both threads: the helper waiting, and the main one spinning with the GIL.
    worker.wait_line(r'File "<string>", line \d+ in (idle_helper|spin_forever_in_python)')
    worker.wait_line(r'File "<string>", line \d+ in (idle_helper|spin_forever_in_python)')
    # Still alive after the dump: the master decides when to kill it.
    assert worker.proc.poll() is None
    worker.signal(signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL
    output = worker.output()
    assert "Current thread" in output
    assert "in idle_helper" in output
    assert "in spin_forever_in_python" in output
