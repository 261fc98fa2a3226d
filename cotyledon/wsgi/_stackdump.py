"""Hung-worker stack dumps: faulthandler armed in the worker, triggered by the master.

Job: in a worker, :func:`arm` makes a signal (:data:`DUMP_SIGNAL`, SIGUSR2 by default)
write every thread's Python stack to the worker's stderr (the log) from faulthandler's C
handler, so the dump works even when a thread holds the GIL in a tight loop or is stuck
in C. The master, when ``_hung`` names a worker, sends that signal, and kills the worker
(SIGKILL) at a short deadline after it.

Must not: decide who is hung (``_hung``), kill, or log: faulthandler writes directly.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from typing import TextIO

DUMP_SIGNAL = signal.SIGUSR2
#: Seconds the master waits between the dump signal and SIGKILL (the dump is synchronous
#: in the signal handler; this only covers scheduling delay).
DUMP_GRACE = 1.0
BANNER = "cotyledon: worker silent for too long, thread stacks follow"


def arm(signum: int = DUMP_SIGNAL, file: TextIO | None = None) -> None:
    """In the worker: dump all thread stacks to ``file`` (default stderr) on ``signum``.

    The worker keeps running after a dump (``chain=False``); the master kills it.
    """
    out = sys.stderr if file is None else file
    faulthandler.register(signum, file=out, all_threads=True, chain=False)
