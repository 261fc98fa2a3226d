"""The master's one blocking call: wait for a readable fd or the next deadline.

Job: ``poll()`` over the signal self-pipe, the control pipe and (for workers started
through a multiprocessing spawn/forkserver context) process sentinels, with the timeout
of the next deadline. ``None`` means "no deadline": an idle master sleeps until a signal
or a message arrives and wakes zero times per second.

Must not: decide anything; it only reports which fds are readable.
"""

from __future__ import annotations

import select
from collections.abc import Iterable

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL


def wait(fds: Iterable[int], timeout: float | None) -> list[int]:
    """Block until one of ``fds`` is readable (or hung up) or ``timeout`` seconds pass.

    Returns the readable fds (empty on timeout). EINTR is retried by Python (PEP 475).
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    millis = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return [fd for fd, mask in poller.poll(millis) if mask & _READABLE]
