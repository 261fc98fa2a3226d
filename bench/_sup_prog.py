"""The program bench/supervision.py runs under each cotyledon implementation.

It uses only the public API both implementations share: ``ServiceManager().add(Svc,
workers=N)`` and ``run()``. Each worker, on entering ``run()``, writes ``"<pid>\\n"`` to
the FIFO named by $BENCH_FIFO (one write < PIPE_BUF, so lines never interleave); the
benchmark timestamps the lines as it reads them. It must not measure anything itself.

Usage: python _sup_prog.py WORKERS
"""

from __future__ import annotations

import os
import sys

import cotyledon

FIFO = os.environ["BENCH_FIFO"]


class Svc(cotyledon.Service):
    """A worker that announces it entered run() and then idles in the signal loop."""

    def run(self) -> None:
        fd = os.open(FIFO, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)


def main() -> None:
    print(f"cotyledon from {cotyledon.__file__}", file=sys.stderr, flush=True)
    manager = cotyledon.ServiceManager()
    manager.add(Svc, workers=int(sys.argv[1]))
    manager.run()


if __name__ == "__main__":
    main()
