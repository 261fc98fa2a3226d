"""The status port: a tiny HTTP server for the health page, run in the MASTER.

Job: serve ``/`` (HTML), ``/json``, ``/_sysinfo`` and ``/metrics`` from a snapshot the
master builds on demand, and the probes ``/livez`` (200 while the master's loop answers)
and ``/readyz`` (200 or 503, see ``_readiness``), on its own listening socket
(``--status-host``, default 127.0.0.1, ``--status-port``), without ever blocking the master.

Design: no thread and no timer of its own. The listening socket and every connection are
non-blocking; the master's event loop adds :meth:`HealthServer.read_fds` and
:meth:`HealthServer.write_fds` to its ``select()`` sets, calls :meth:`handle_readable` /
:meth:`handle_writable` for the ready ones, and wakes up at :meth:`next_deadline` (only
while a connection is open) to :meth:`expire` slow clients. Requests are parsed by our
sans-IO :class:`~cotyledon.wsgi._http_protocol.ServerConnection` with small limits; one
request per connection (``Connection: close``).

Bounded: each connection has ``timeout`` seconds to send its request and read the page;
at most ``max_connections`` are open at once, and a client arriving at that cap closes
the oldest connection still waiting for its request (idle clients cannot lock the page
out; clients arrive in the kernel backlog while every connection is being answered).
When ``accept()`` fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
listener leaves :meth:`read_fds` for :data:`ACCEPT_PAUSE` seconds (a busy loop
otherwise: the pending client keeps it readable), with one WARNING per
:data:`WARN_EVERY` seconds and an INFO line once accepting works again.

Must not: log at DEBUG or above for each request (only for a shortage of resources),
run application code, or serve on a non-loopback address unless told to (the page shows
pids, paths and sys.path).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from cotyledon.wsgi._health_render import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    METRICS_CONTENT_TYPE,
    Snapshot,
    WorkerRow,
    render_html,
    render_json,
    render_metrics,
    render_sysinfo,
)
from cotyledon.wsgi._http_events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    EndOfMessage,
    HTTPError,
    Request,
)
from cotyledon.wsgi._http_protocol import Limits, ServerConnection
from cotyledon.wsgi._readiness import Readiness
from cotyledon.wsgi._scoreboard import (
    LATENCY_BUCKETS,
    STATUS_CLASSES,
    SlotStats,
    SlotStatus,
    Totals,
)

LOG = logging.getLogger("cotyledon.wsgi.status")

DEFAULT_HOST = "127.0.0.1"
#: Seconds the listener rests after accept() ran out of fds or memory.
ACCEPT_PAUSE = 1.0
#: At most one warning per this many seconds while accept() keeps failing.
WARN_EVERY = 60.0
#: accept() errors that mean "out of resources": pause, do not spin.
_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# A status request is a tiny GET: small limits keep a hostile client cheap for the master.
HEALTH_LIMITS = Limits(
    max_request_line=2048,
    max_header_count=50,
    max_header_size=4096,
    max_head_size=16384,
    max_body_size=1024,
)
_RECV_SIZE = 65536
_SERVER = b"cotyledon-status"
_PROBE_TYPE = b"application/json"


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    http: ServerConnection = field(default_factory=lambda: ServerConnection(HEALTH_LIMITS, False))
    out: bytearray = field(default_factory=bytearray)
    request: Request | None = None
    done: bool = False  # response complete: close once ``out`` is flushed


def collect_sysinfo() -> dict[str, Any]:
    """``/_sysinfo``: platform, Python build and paths (Spawning's ``/_sysinfo``, extended)."""
    gil = getattr(sys, "_is_gil_enabled", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_build": list(platform.python_build()),
        "python_compiler": platform.python_compiler(),
        "gil_enabled": gil() if gil is not None else True,
        "executable": sys.executable,
        "sys_path": list(sys.path),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "tempdir": tempfile.gettempdir(),
    }


class HealthServer:
    """The status port's listener and connections, driven by the master's event loop.

    :param snapshot: called for each ``/``, ``/json`` and ``/metrics`` request.
    :param sysinfo: called for each ``/_sysinfo`` request.
    :param readiness: called for each ``/readyz`` request (None: no ``/readyz``).
    :param host: address to bind (default 127.0.0.1); ignored when ``sock`` is given.
    :param port: port to bind; 0 picks a free one (read it back from :attr:`address`).
    :param sock: an already bound listening socket to use instead.
    :param timeout: seconds a client has to send its request and read the response.
    :param max_connections: connections open at once; one more closes the oldest that
        has not sent its request yet.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        sysinfo: Callable[[], Mapping[str, Any]] = collect_sysinfo,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        max_connections: int = 16,
        backlog: int = 64,
        readiness: Callable[[], Readiness] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._sysinfo = sysinfo
        self._readiness = readiness
        self._pages = self._page_table()
        self._clock = clock
        self._timeout = timeout
        self._max_connections = max_connections
        self._conns: dict[int, _Conn] = {}  # in accept order (the oldest first)
        self._paused_until: float | None = None  # accept() ran short of resources
        self._warned_at: float | None = None  # the last shortage warning
        self._warned = False  # that warning awaits its "accepting again"
        self._failures = 0  # accept() failures since that warning
        if sock is None:
            sock = _bind(host, port, backlog)
        sock.setblocking(False)
        self._listener = sock

    # -- for the event loop ----------------------------------------------------------------

    def fileno(self) -> int:
        """The listening socket's fd."""
        return self._listener.fileno()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def read_fds(self) -> list[int]:
        """Fds to watch for reading: clients, and the listener unless accepting is paused
        (resources short) or every connection is busy sending a response."""
        fds = [fd for fd, c in self._conns.items() if not c.done]
        if self._paused_until is None and (fds or len(self._conns) < self._max_connections):
            fds.append(self._listener.fileno())
        return fds

    def write_fds(self) -> list[int]:
        """Fds with response bytes still to send."""
        return [fd for fd, c in self._conns.items() if c.out]

    def next_deadline(self) -> float | None:
        """When the oldest open connection times out or accepting resumes; None when idle
        (no wake-up needed)."""
        times = [c.deadline for c in self._conns.values()]
        if self._paused_until is not None:
            times.append(self._paused_until)
        return min(times, default=None)

    def handle_readable(self, fd: int | None = None) -> None:
        """Accept (``fd`` is the listener or None) or read from a client connection."""
        if fd is None or fd == self._listener.fileno():
            self._accept()
            return
        conn = self._conns.get(fd)
        if conn is not None and not conn.done:
            self._read(conn)

    def handle_writable(self, fd: int) -> None:
        """Send pending response bytes to a client."""
        conn = self._conns.get(fd)
        if conn is not None:
            self._flush(conn)

    def dispatch(self, readable: Iterable[int], writable: Iterable[int] = ()) -> None:
        """Convenience: handle what ``select()`` returned for our fds (others are ignored)."""
        ours = set(self._conns) | {self._listener.fileno()}
        for fd in writable:
            if fd in ours:
                self.handle_writable(fd)
        for fd in readable:
            if fd in ours:
                self.handle_readable(fd)

    def expire(self, now: float | None = None) -> int:
        """Close connections past their deadline, end an accept pause that is over;
        return how many connections were closed."""
        now = self._clock() if now is None else now
        late = [fd for fd, c in self._conns.items() if c.deadline <= now]
        for fd in late:
            self._close(fd)
        if self._paused_until is not None and self._paused_until <= now:
            self._paused_until = None  # the listener is offered again: accept() retries
        return len(late)

    @property
    def accept_paused(self) -> bool:
        """True while accepting rests after a shortage of fds or memory."""
        return self._paused_until is not None

    def close(self) -> None:
        """Close every connection and the listener."""
        for fd in list(self._conns):
            self._close(fd)
        self._listener.close()

    # -- internals -------------------------------------------------------------------------

    def _accept(self) -> None:
        # Readable: a client is waiting. At the cap, the oldest idle connection makes room.
        if len(self._conns) >= self._max_connections and not self._close_oldest_idle():
            return
        while self._paused_until is None and len(self._conns) < self._max_connections:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self._pause(exc)
                return
            self._accepted()
            sock.setblocking(False)
            self._conns[sock.fileno()] = _Conn(sock, self._clock() + self._timeout)

    def _close_oldest_idle(self) -> bool:
        """Close the oldest connection still waiting for its request; False: none."""
        idle = next((fd for fd, c in self._conns.items() if not c.done), None)
        if idle is None:
            return False  # every connection is being answered: new clients wait
        self._close(idle)
        return True

    def _pause(self, exc: OSError) -> None:
        """accept() failed for want of resources (or oddly): rest instead of spinning."""
        now = self._clock()
        self._paused_until = now + ACCEPT_PAUSE
        self._failures += 1
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return
        what = "out of resources" if exc.errno in _SHORTAGE else "unexpected error"
        more = f"; {self._failures - 1} more failure(s) since the last warning"
        LOG.warning(
            "Status page: accept() failed (%s: %s); new connections wait, retried every %gs%s",
            what,
            exc,
            ACCEPT_PAUSE,
            more if self._failures > 1 else "",
        )
        self._warned_at = now
        self._warned = True
        self._failures = 0

    def _accepted(self) -> None:
        if self._warned:
            LOG.info("Status page: accepting connections again")
            self._warned = False

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn.sock.fileno())
            return
        try:
            conn.http.receive_data(data)
            self._process(conn)
        except HTTPError as exc:
            self._queue(conn, conn.http.error_response(exc, [(b"Server", _SERVER)]))
        if not data and not conn.out and not conn.done:
            self._close(conn.sock.fileno())

    def _process(self, conn: _Conn) -> None:
        while True:
            event = conn.http.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, Request):
                conn.request = event
            elif isinstance(event, EndOfMessage) and conn.request is not None:
                self._respond(conn, conn.request)
                return
            elif isinstance(event, ConnectionClosed) or event is PAUSED:
                self._close(conn.sock.fileno())
                return

    def _respond(self, conn: _Conn, request: Request) -> None:
        status, content_type, body, extra = self._route(request)
        headers = [
            (b"Content-Type", content_type),
            (b"Content-Length", b"%d" % len(body)),
            (b"Cache-Control", b"no-store"),
            (b"X-Content-Type-Options", b"nosniff"),
            (b"Content-Security-Policy", b"default-src 'none'; style-src 'unsafe-inline'"),
            (b"Date", formatdate(usegmt=True).encode()),
            (b"Server", _SERVER),
            *extra,
        ]
        http = conn.http
        out = http.send_response(status, headers) + http.send_data(body) + http.send_end()
        self._queue(conn, out)

    def _route(self, request: Request) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        if request.method not in (b"GET", b"HEAD"):
            allow = [(b"Allow", b"GET, HEAD")]
            return 405, b"text/plain; charset=utf-8", b"405 Method Not Allowed\n", allow
        page = self._pages.get(request.target.split(b"?", 1)[0])
        if page is None:
            return 404, b"text/plain; charset=utf-8", b"404 Not Found\n", []
        status, content_type, body = page()
        return status, content_type, body, []

    def _page_table(self) -> dict[bytes, Callable[[], tuple[int, bytes, bytes]]]:
        pages: dict[bytes, Callable[[], tuple[int, bytes, bytes]]] = {
            b"/": self._html,
            b"/status": self._html,
            b"/json": self._json,
            b"/status.json": self._json,
            b"/metrics": self._metrics,
            b"/_sysinfo": self._sysinfo_page,
            b"/livez": self._livez,
        }
        if self._readiness is not None:
            pages[b"/readyz"] = self._readyz
        return pages

    def _html(self) -> tuple[int, bytes, bytes]:
        return 200, HTML_CONTENT_TYPE.encode(), render_html(self._snapshot())

    def _json(self) -> tuple[int, bytes, bytes]:
        return 200, JSON_CONTENT_TYPE.encode(), render_json(self._snapshot())

    def _metrics(self) -> tuple[int, bytes, bytes]:
        return 200, METRICS_CONTENT_TYPE.encode(), render_metrics(self._snapshot())

    def _sysinfo_page(self) -> tuple[int, bytes, bytes]:
        return 200, JSON_CONTENT_TYPE.encode(), render_sysinfo(self._sysinfo())

    def _livez(self) -> tuple[int, bytes, bytes]:
        return 200, _PROBE_TYPE, b'{"status":"alive"}\n'

    def _readyz(self) -> tuple[int, bytes, bytes]:
        assert self._readiness is not None
        answer = self._readiness()
        body = json.dumps(answer.as_json(), separators=(",", ":")).encode() + b"\n"
        return (200 if answer.ready else 503), _PROBE_TYPE, body

    def _queue(self, conn: _Conn, data: bytes) -> None:
        conn.out += data
        conn.done = True
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        if conn.done:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            self._close(fd)

    def _close(self, fd: int) -> None:
        conn = self._conns.pop(fd, None)
        if conn is not None:
            conn.sock.close()


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.set_inheritable(False)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


# -- building the snapshot (the master calls this from its ``snapshot`` callable) ----------

_STATE_NAMES = {
    SlotStatus.BOOTING: "booting",
    SlotStatus.READY: "ready",
    SlotStatus.DRAINING: "draining",
    SlotStatus.EMPTY: "empty",
}


def worker_rows(
    stats: Iterable[SlotStats],
    now: float,
    memory: Mapping[int, int | None] | None = None,
    last_restart: Mapping[int, tuple[str, float]] | None = None,
    slots: Mapping[int, int] | None = None,
) -> tuple[WorkerRow, ...]:
    """Rows for the page from scoreboard slots.

    :param memory: pid -> bytes (from :mod:`cotyledon.wsgi._memory`).
    :param last_restart: worker slot -> (reason, monotonic time) of its latest replacement.
    :param slots: scoreboard index -> worker slot (the worker id); default: the index.
        A replacement and the worker it replaces share a worker slot, not an index.
    """
    memory = memory or {}
    last_restart = last_restart or {}
    slots = slots or {}
    rows = []
    for s in stats:
        if s.status is SlotStatus.EMPTY:
            continue
        slot = slots.get(s.index, s.index)
        reason, at = last_restart.get(slot, (None, None))
        rows.append(
            WorkerRow(
                slot=slot,
                pid=s.pid,
                generation=s.generation,
                status=_STATE_NAMES[s.status],
                age=now - s.started_at,
                requests=s.requests,
                in_flight=s.in_flight,
                heartbeat_age=now - s.last_heartbeat,
                memory=memory.get(s.pid),
                last_restart_reason=reason,
                last_restart_age=None if at is None else now - at,
            )
        )
    # A replacement next to the worker it replaces.
    return tuple(sorted(rows, key=lambda r: (r.slot, r.generation, r.pid)))


def cumulative_buckets(totals: Totals) -> tuple[tuple[float, int], ...]:
    """Scoreboard buckets (per bucket) as Prometheus wants them (cumulative, +Inf last)."""
    bounds = (*LATENCY_BUCKETS, float("inf"))
    running = 0
    out = []
    for bound, count in zip(bounds, totals.buckets, strict=True):
        running += count
        out.append((bound, running))
    return tuple(out)


def status_class_pairs(totals: Totals) -> tuple[tuple[str, int], ...]:
    """``(("1xx", n), ...)`` from scoreboard totals."""
    return tuple(zip(STATUS_CLASSES, totals.status_classes, strict=True))
