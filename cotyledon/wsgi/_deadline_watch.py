"""Enforce ``--request-timeout`` in a worker: a thread that watches in-flight requests.

Job: when a request passes its deadline (bookkeeping in ``_request_deadlines``):

* log one ERROR with the method, path, elapsed time and the Python stack of the thread
  serving it;
* if no byte of its response was sent, answer ``504`` with ``Connection: close`` right
  away, from this thread, even when the serving thread is stuck in C code (one long
  ``time.sleep``, a blocking read): the request's :class:`Ticket` is marked abandoned so
  that the serving thread never writes after it, and the socket is shut down (never
  closed here: the serving thread owns the fd, which could otherwise be reused);
* raise :class:`RequestTimeout` in the serving thread at its next Python instruction
  (``PyThreadState_SetAsyncExc``);
* if the thread still has not returned ``grace`` seconds later, ask the master once to
  replace this worker (reason ``request-timeout``): it stops accepting, finishes its
  other requests and exits; the others keep being served meanwhile.

The thread sleeps until the next deadline (or a new request); it does not exist while
no request was ever timed.

Must not: close a client socket, or raise into a thread whose request already ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

from cotyledon.wsgi._request_deadlines import DeadlineBook, Expired, InFlight, Stuck

LOG = logging.getLogger("cotyledon.wsgi.request_timeout")

GATEWAY_TIMEOUT = (
    b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 16\r\nConnection: close\r\n\r\nGateway Timeout\n"
)


class RequestTimeout(BaseException):
    """Raised in a request's thread when it passed ``--request-timeout``.

    A ``BaseException`` (like ``asyncio.CancelledError``) so that an app's
    ``except Exception`` does not swallow it and carry on past its deadline.
    """


class Ticket:
    """One timed request: who may still write its response.

    The serving thread calls :meth:`claim_head` before it sends the first byte of its
    response; the watch thread calls :meth:`abandon` at the deadline. Whichever comes
    first wins, under the ticket's lock.
    """

    __slots__ = ("_lock", "abandoned", "deadline", "head_sent")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.head_sent = False
        self.abandoned = False
        self._lock = threading.Lock()

    def claim_head(self) -> bool:
        """Serving thread: may the response start? False once the 504 was sent."""
        with self._lock:
            if self.abandoned:
                return False
            self.head_sent = True
            return True

    def abandon(self) -> bool:
        """Watch thread: take the response over; False if its head is already out."""
        with self._lock:
            self.abandoned = True
            return not self.head_sent


def raise_in_thread(ident: int, exc_type: type[BaseException]) -> bool:
    """Schedule ``exc_type`` in thread ``ident`` (at its next bytecode); True if it exists."""
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
    set_async_exc.restype = ctypes.c_int
    return bool(set_async_exc(ident, exc_type))


def thread_stack(ident: int) -> str:
    frame = sys._current_frames().get(ident)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"


class DeadlineWatch:
    """Deadlines of this worker's in-flight requests (thread-safe; see the module doc)."""

    def __init__(
        self,
        timeout: float,
        grace: float,
        *,
        on_stuck: Callable[[str], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._book = DeadlineBook(timeout, grace)
        self._tickets: dict[int, tuple[Ticket, socket.socket]] = {}
        self._on_stuck = on_stuck
        self._stuck_reported = False
        self._clock = clock
        # A plain (C) lock, never a Condition: a RequestTimeout that fires in a serving
        # thread right after it acquired a Python-level lock could leave it held.
        self._lock = threading.Lock()
        self._changed = threading.Event()  # wakes the watch thread: a new deadline
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- the serving threads -----------------------------------------------------------

    def begin(self, sock: socket.socket, method: str, path: str) -> Ticket:
        """A request starts in this thread, on client socket ``sock``."""
        ident = threading.get_ident()
        with self._lock:
            deadline = self._book.start(ident, self._clock(), method, path)
            ticket = Ticket(deadline)
            self._tickets[ident] = (ticket, sock)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="request-timeout", daemon=True
                )
                self._thread.start()
        self._changed.set()
        return ticket

    def end(self) -> None:
        """The request of this thread is over (returned, failed or timed out)."""
        ident = threading.get_ident()
        while True:
            # A RequestTimeout scheduled just before may fire on any bytecode here:
            # retry until the request is removed, so that none can fire later.
            try:
                with self._lock:
                    self._book.finish(ident)
                    self._tickets.pop(ident, None)
                return
            except RequestTimeout:
                continue

    def stop(self) -> None:
        self._stopped = True
        self._changed.set()

    # -- the watch thread --------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopped:
            self._changed.clear()  # before looking: a begin() from now on wakes the wait
            with self._lock:
                now = self._clock()
                for event in self._book.due(now):
                    if isinstance(event, Expired):
                        self._expired(event.request, now)
                    else:
                        self._stuck(event)
                wake_at = self._book.next_deadline()
            self._changed.wait(None if wake_at is None else max(wake_at - now, 0.0))

    def _expired(self, request: InFlight, now: float) -> None:
        """Under the lock: the serving thread cannot end this request meanwhile."""
        ident = request.key
        assert isinstance(ident, int)
        ticket, sock = self._tickets[ident]
        answered = ticket.abandon()
        if answered:
            with contextlib.suppress(OSError):
                sock.send(GATEWAY_TIMEOUT)
                sock.shutdown(socket.SHUT_RDWR)
        LOG.error(
            "Request %s %s passed --request-timeout (%gs) after %.2fs: %s; its thread's "
            "stack:\n%s",
            request.method,
            request.path,
            self.timeout,
            now - request.started,
            "504 sent, connection closed" if answered else "response already started, cut",
            thread_stack(ident).rstrip("\n"),
        )
        raise_in_thread(ident, RequestTimeout)

    def _stuck(self, event: Stuck) -> None:
        if self._stuck_reported:
            return
        self._stuck_reported = True
        request = event.request
        LOG.error(
            "Request %s %s still running %.1fs after its deadline: replacing this worker",
            request.method,
            request.path,
            self._clock() - request.deadline,
        )
        self._on_stuck(f"request-timeout: {request.method} {request.path} did not return")
