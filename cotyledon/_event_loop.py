"""The master's one blocking call: wait for a readable fd or the next deadline.

Job: ``poll()`` over the signal self-pipe, the control pipe, (for workers started
through a multiprocessing spawn/forkserver context) process sentinels and the fds of
master extensions (a status page's sockets), with the timeout of the next deadline.
``None`` means "no deadline": an idle master sleeps until a signal or a message arrives
and wakes zero times per second.

Must not: decide anything; it only reports which fds are readable.
"""

from __future__ import annotations

import select
from collections.abc import Iterable

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR


def wait(fds: Iterable[int], timeout: float | None) -> list[int]:
    """Block until one of ``fds`` is readable (or hung up) or ``timeout`` seconds pass.

    Returns the readable fds (empty on timeout). EINTR is retried by Python (PEP 475).
    """
    return wait_rw(fds, (), timeout)[0]


def wait_rw(
    read_fds: Iterable[int], write_fds: Iterable[int], timeout: float | None
) -> tuple[list[int], list[int]]:
    """Like :func:`wait`, also for fds to write to; returns (readable, writable)."""
    poller = select.poll()
    masks: dict[int, int] = {}
    for fd in read_fds:
        masks[fd] = masks.get(fd, 0) | select.POLLIN
    for fd in write_fds:
        masks[fd] = masks.get(fd, 0) | select.POLLOUT
    for fd, mask in masks.items():
        poller.register(fd, mask)
    millis = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    readable, writable = [], []
    for fd, mask in poller.poll(millis):
        if mask & _READABLE and masks[fd] & select.POLLIN:
            readable.append(fd)
        if mask & _WRITABLE and masks[fd] & select.POLLOUT:
            writable.append(fd)
    return readable, writable
