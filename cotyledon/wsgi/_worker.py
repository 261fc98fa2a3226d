"""The WSGI worker: a ``cotyledon.Service`` that accepts on the shared listening sockets.

Design (one worker process):

* The ``run()`` thread owns an epoll set holding the listeners (``EPOLLEXCLUSIVE``, so one
  worker wakes per connection), a wake-up pipe, and every idle connection (``EPOLLONESHOT``:
  a connection reported readable is disarmed until the pool thread re-arms it, so two
  threads never read one socket and no hand-back queue is needed).
* A readable connection is handed to a bounded futurist thread pool. When the pool's queue
  is full the selector thread answers ``503`` with ``Connection: close`` at once.
* Fair sharing between workers: a worker accepts only while it has room: one request
  per thread running and one queued behind each (a freed thread starts on the next
  request at once, without a round trip through this thread). Room is claimed by a
  request in the pool and, for one turn of the loop, by a connection just accepted (an
  idle keep-alive connection claims nothing). A worker with no room takes its
  listeners out of the epoll set, so the kernel hands new connections to a worker that
  has room (``EPOLLEXCLUSIVE`` wakes only registered waiters). It takes them back as
  soon as a request ends, and after ``FULL_RETRY`` seconds anyway: then, still full, it
  accepts as many connections as it has threads (queued, or a fast ``503`` past
  ``--max-queue``), so that under real overload clients get an answer instead of
  waiting in the backlog.
* Idle connections carry a deadline: the keep-alive timeout, or the head deadline once the
  first bytes of a request arrived (slow heads get ``408``). The selector thread sweeps
  them a few times per timeout; it is the only one that closes idle connections.
* ``terminate()`` stops accepting, lets in-flight requests finish (their responses say
  ``Connection: close``) within the graceful timeout, then returns. When the whole server
  stops (the master's SIGTERM, see ``_stop_notice``), the worker first keeps serving
  through ``--shutdown-delay``, then accepts what already waits in the kernel's accept
  queue (those clients are served, not reset) and closes its listening sockets; a worker
  that is only replaced or recycled closes them at once (the others accept). An idle keep-alive
  connection is not cut at once: a client may be sending its next request right now, and
  that request would be lost. It gets ``DRAIN_LINGER`` seconds to send one more request
  (answered with ``Connection: close``), so a busy client moves to another worker with no
  failed request; a quiet one is closed after that.

Must not: parse HTTP or call the app (``_connection``), or open listening sockets (the
master does, ``_listeners``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import futurist

import cotyledon
from cotyledon.wsgi import (
    _http_protocol,  # imported by the master: shared by the workers
    _logfiles,
    _stackdump,
)
from cotyledon.wsgi._config import ServerConfig
from cotyledon.wsgi._connection import Connection, RequestHandler
from cotyledon.wsgi._environ import EnvironBuilder
from cotyledon.wsgi._http_events import HTTPError
from cotyledon.wsgi._readiness import StopPlan
from cotyledon.wsgi._recycler import Recycler
from cotyledon.wsgi._recycling import RecyclePolicy
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus, SlotWriter
from cotyledon.wsgi._stop_notice import StopNotice
from cotyledon.wsgi._wsgi_response import FileWrapper

LOG = logging.getLogger("cotyledon.wsgi.worker")
ACCEPT_BATCH = 16
FULL_RETRY = 0.02  # seconds a full worker leaves the listeners to the others
DRAIN_LINGER = 1.0  # seconds an idle keep-alive connection may still send, once stopping
READABLE = select.EPOLLIN | select.EPOLLRDHUP
OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    b"Service Unavailable\n"
)


def _rejector(max_queue: int) -> Callable[[Any, int], None]:
    """Reject a submission when every thread is busy and ``max_queue`` requests wait."""

    def check(executor: Any, backlog: int) -> None:
        spare = executor._max_workers - executor.num_workers  # threads not started yet
        if backlog >= max_queue + spare + executor.get_num_idle_workers():
            raise futurist.RejectedSubmission(f"{backlog} requests already queued")

    return check


def _make_protocol(config: ServerConfig) -> Callable[[], Any]:
    limits = _http_protocol.Limits(
        max_request_line=config.max_request_line,
        max_header_count=config.max_header_count,
        max_header_size=config.max_header_size,
        max_head_size=config.max_head_size,
        max_body_size=config.max_body_size or None,
    )
    keepalive = config.keepalive
    return lambda: _http_protocol.ServerConnection(limits, keep_alive=keepalive)


class Server:
    """The accept/dispatch loop of one worker (see the module docstring)."""

    def __init__(
        self,
        app: Callable[..., Any],
        config: ServerConfig,
        sockets: Sequence[socket.socket],
        *,
        on_request_done: Callable[..., None] | None = None,
        on_request_start: Callable[[], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._heartbeat = heartbeat
        # The master calls a worker hung after --timeout without a heartbeat: beat at least
        # four times per timeout, even with no connection at all.
        self._beat_every = config.timeout / 4 if heartbeat and config.timeout else None
        self.clock = clock
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._drained = threading.Event()
        self._new_protocol = _make_protocol(config)
        self._builder = EnvironBuilder(
            root_path=config.root_path,
            forwarded_allow_ips=config.forwarded_allow_ips,
            forwarded_headers=config.forwarded_headers,
            multithread=config.threads > 1,
            multiprocess=config.workers > 1,
            file_wrapper=FileWrapper,
        )
        self.handler = RequestHandler(
            app,
            self._builder,
            body_timeout=config.header_timeout,
            keepalive=config.keepalive,
            stopping=self._stopping.is_set,
            on_request_done=on_request_done,
            on_request_start=on_request_start,
        )
        self._listeners = {sock.fileno(): sock for sock in sockets}
        self._bases: dict[int, dict[str, Any]] = {}
        self._conns: dict[int, Connection] = {}
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()  # no write to the pipe once it is closed
        self._pool = futurist.ThreadPoolExecutor(
            max_workers=config.threads, check_and_reject=_rejector(config.max_queue)
        )
        self._accepting = False
        self._accept_paused = False  # after EMFILE & co: until the next sweep
        self._drain_backlog = False  # on stop: accept what is queued before closing
        # A thread, and one request queued behind it: a freed thread starts on the next
        # request at once, without a round trip through the selector thread.
        self._capacity = 2 * config.threads
        self._claimed = 0  # requests in the pool + accepted connections not dispatched yet
        self._claim_lock = threading.Lock()
        self._fresh: set[int] = set()  # fds accepted and not dispatched yet
        self._fresh_before: set[int] = set()  # ... already at the previous turn
        self._full_until: float | None = None  # no room: listeners left to the others
        self._full_retry = False  # FULL_RETRY passed with no room: accept a thread's worth
        shortest = min(config.keepalive_timeout, config.header_timeout)
        self._sweep_every = min(max(shortest / 4, 0.02), 1.0)

    # -- lifecycle -------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until :meth:`stop`; returns once in-flight requests are done."""
        self._started.set()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._set_accepting(True)
        try:
            self._loop()
        finally:
            self._close_all()
            self._drained.set()

    def stop(self, timeout: float, *, drain_backlog: bool = False) -> bool:
        """Stop accepting, drain in-flight requests for up to ``timeout`` seconds.

        ``drain_backlog``: first accept (and serve) the connections already queued on the
        listening sockets; for a server whose listeners are about to close everywhere.
        Thread-safe; returns True when every request finished in time.
        """
        self._drain_backlog = drain_backlog
        self._stopping.set()
        if not self._started.is_set():  # stopped before it ran: nothing to drain
            return True
        self._wake()
        drained = self._drained.wait(timeout)
        self._pool.shutdown(wait=False)
        return drained

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        next_sweep = self.clock() + self._sweep_every
        lingering = False
        while True:
            stopping = self._stopping.is_set()
            if stopping:
                if not lingering:
                    lingering = True
                    self._close_listeners()
                    self._start_linger()
                    next_sweep = min(next_sweep, self.clock() + self._sweep_every)
                if not self._conns:
                    return
            if self._heartbeat is not None:
                self._heartbeat()
            for fd, events in self._epoll.poll(self._poll_timeout(next_sweep)):
                if fd in self._listeners:
                    self._accept(self._listeners[fd])
                elif fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 512)
                else:
                    self._dispatch(fd, events)
            self._expire_fresh_claims()
            now = self.clock()
            if now >= next_sweep:
                self._close_idle(expired_only=True, now=now)
                next_sweep = now + self._sweep_every
                self._accept_paused = False
            if not stopping and not self._accepting:
                self._maybe_resume_accepting(now)

    def _poll_timeout(self, next_sweep: float) -> float:
        """Seconds to sleep (-1: until an event). Nothing can expire without connections."""
        wake_at = next_sweep if self._conns or self._accept_paused else None
        if self._full_until is not None:
            wake_at = min(wake_at or self._full_until, self._full_until)
        if self._beat_every is not None:
            beat_at = self.clock() + self._beat_every
            wake_at = beat_at if wake_at is None else min(wake_at, beat_at)
        return max(wake_at - self.clock(), 0.0) if wake_at is not None else -1.0

    def _close_listeners(self) -> None:
        """Stopping: never accept again; what waits in the accept queue is served first
        when the listeners are about to close everywhere (see :meth:`stop`)."""
        self._set_accepting(False)
        if self._drain_backlog:
            for listener in self._listeners.values():
                self._accept_queued(listener)
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()

    def _accept_queued(self, listener: socket.socket) -> None:
        # Past --max-connections too: the kernel queued at most --backlog of them, and a
        # connection left there is reset when the listener closes.
        limit = self.config.max_connections + self.config.backlog
        while len(self._conns) < limit:
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                LOG.warning("accept() failed while draining the accept queue: %s", exc)
                return
            try:
                self._add_connection(listener, sock, addr)
            except OSError:
                sock.close()

    def _start_linger(self) -> None:
        """Stopping: every idle connection closes within DRAIN_LINGER (see the docstring)."""
        last_call = self.clock() + DRAIN_LINGER
        for conn in self._conns.values():
            conn.deadline = min(conn.deadline, last_call)
        self._sweep_every = min(self._sweep_every, DRAIN_LINGER / 4)

    def _expire_fresh_claims(self) -> None:
        """A connection accepted a whole turn ago that sent nothing is idle: unclaim it."""
        expired = self._fresh & self._fresh_before
        if expired:
            self._fresh -= expired
            self._claim(-len(expired))
        self._fresh_before = set(self._fresh)

    def _maybe_resume_accepting(self, now: float) -> None:
        if self._full_until is not None:
            full = self._claimed >= self._capacity
            if full and now < self._full_until:
                return
            self._full_until = None
            self._full_retry = full
        if not self._accept_paused:
            self._set_accepting(len(self._conns) < self.config.max_connections)

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self._accepting:
            return
        self._accepting = accepting
        for fd in self._listeners:
            if accepting:
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
            else:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)

    def _accept(self, listener: socket.socket) -> None:
        room = self._capacity - self._claimed
        if room <= 0:
            if not self._full_retry:
                self._leave_listeners()
                return
            # FULL_RETRY passed and every worker is still full: queue one thread's worth
            # (or answer 503 past --max-queue) rather than leave clients in the backlog.
            room = self.config.threads
        self._full_retry = False
        for _ in range(min(ACCEPT_BATCH, room)):
            if len(self._conns) >= self.config.max_connections:
                self._set_accepting(False)
                return
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # out of descriptors or memory: pause until next sweep
                LOG.warning("accept() failed, pausing new connections: %s", exc)
                self._accept_paused = True
                self._set_accepting(False)
                return
            try:
                self._add_connection(listener, sock, addr)
            except OSError:  # the client is already gone (reset before we looked)
                sock.close()
        if self._claimed >= self._capacity:
            self._leave_listeners()

    def _leave_listeners(self) -> None:
        """No room left: let the other workers take new connections."""
        if not self._stopping.is_set():
            self._full_until = self.clock() + FULL_RETRY
            self._set_accepting(False)

    def _claim(self, delta: int) -> None:
        with self._claim_lock:
            self._claimed += delta
        if delta < 0 and self._full_until is not None:
            self._wake()  # a thread is free: take the listeners back

    def _add_connection(self, listener: socket.socket, sock: socket.socket, addr: Any) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = addr
        else:
            peer = ""
        base = self._bases.get(listener.fileno())
        if base is None:
            base = self._builder.connection_base(listener.getsockname(), None)
            self._bases[listener.fileno()] = base
        conn_base = dict(base)
        if peer:
            conn_base["REMOTE_ADDR"], conn_base["REMOTE_PORT"] = str(peer[0]), str(peer[1])
        conn_base["cotyledon.trusted_peer"] = self._builder.trust.trusts(peer or None)
        conn = Connection(sock, self._new_protocol(), conn_base)
        conn.deadline = self.clock() + self.config.header_timeout
        self._conns[conn.fd] = conn
        self._fresh.add(conn.fd)
        self._claim(1)
        self._epoll.register(conn.fd, READABLE | select.EPOLLONESHOT)

    def _dispatch(self, fd: int, _events: int) -> None:
        conn = self._conns.get(fd)
        if conn is None or not conn.idle:
            return
        conn.idle = False
        if fd in self._fresh:
            self._fresh.discard(fd)  # its claim, taken at accept, passes to the request
        else:
            self._claim(1)
        try:
            self._pool.submit(self._serve, conn)
        except futurist.RejectedSubmission:
            self._claim(-1)
            self._overloaded(conn)
        except RuntimeError:  # the pool is shut down: we are stopping
            self._claim(-1)
            self._forget(conn)

    def _overloaded(self, conn: Connection) -> None:
        LOG.debug("Pool full: 503 to %s", conn.peer)
        conn.recv_nowait()
        with contextlib.suppress(OSError):
            conn.sock.send(OVERLOADED)
        conn.drain = False
        self._forget(conn)

    def _serve(self, conn: Connection) -> None:
        """In a pool thread: serve ``conn`` then re-arm or close it."""
        keep = False
        was_started = conn.head_started
        try:
            keep = self.handler.handle(conn)
        except BaseException:  # even SystemExit from an app: this thread must close conn
            LOG.exception("Unexpected error serving %s", conn.peer)
        finally:
            self._claim(-1)
        if not keep:
            self._forget(conn)
            return
        if not conn.head_started:
            conn.deadline = self.clock() + self.config.keepalive_timeout
        elif not was_started:
            conn.deadline = self.clock() + self.config.header_timeout
        if self._stopping.is_set():
            # The response promised keep-alive before the stop: the client may be sending
            # its next request already. It lingers like the other idle connections.
            conn.deadline = min(conn.deadline, self.clock() + DRAIN_LINGER)
        conn.idle = True
        try:
            self._epoll.modify(conn.fd, READABLE | select.EPOLLONESHOT)
        except OSError:
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        """Remove ``conn`` from the loop then close it (in that order: fd reuse)."""
        if conn.fd in self._fresh:  # closed before its first dispatch (selector thread)
            self._fresh.discard(conn.fd)
            self._claim(-1)
        self._conns.pop(conn.fd, None)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(conn.fd)
        conn.close()
        if self._stopping.is_set() or not self._accepting:
            self._wake()  # to finish draining, or to accept again below max_connections

    def _wake(self) -> None:
        """Wake the selector thread (thread-safe; a no-op once the loop has ended)."""
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    def _close_idle(self, *, expired_only: bool, now: float = 0.0) -> None:
        for conn in list(self._conns.values()):
            if not conn.idle or (expired_only and conn.deadline > now):
                continue
            if conn.head_started:  # part of a head came, too slowly: 408, logged and counted
                self.handler.refuse(conn, HTTPError("request head timed out", 408), nowait=True)
            conn.drain = False  # never block the selector thread
            self._forget(conn)

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            self._forget(conn)
        self._epoll.close()
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1


class WSGIService(cotyledon.Service):
    """One WSGI worker process; built by the manager in the child as
    ``WSGIService(worker_id, app, config, sockets)``.

    :param app: the WSGI callable, or its ``module:app`` spec (loaded here in the child when
        the master did not preload it).
    :param config: the server settings.
    :param sockets: the listening sockets opened by the master.
    :param scoreboard: the master's shared statistics table; this worker writes the slot
        the master assigned to it before the fork (heartbeat, requests, status).
    :param stop_notice: where the master writes when the whole server was asked to stop.
    """

    name = "wsgi"

    def __init__(  # noqa: PLR0917 - the manager passes a service's args positionally
        self,
        worker_id: int,
        app: Callable[..., Any] | str,
        config: ServerConfig,
        sockets: Sequence[socket.socket],
        scoreboard: Scoreboard | None = None,
        stop_notice: StopNotice | None = None,
    ) -> None:
        # Objects inherited from the master are never collected here: freezing them (O(1))
        # keeps this worker's collector from writing to their pages, which would copy them
        # (measured: 12 MiB -> 4.5 MiB private memory per worker for the hello app).
        gc.freeze()
        super().__init__(worker_id)
        self.config = config
        self.stop_notice = stop_notice
        self.graceful_shutdown_timeout = int(config.graceful_timeout) + 2  # type: ignore[misc]
        if isinstance(app, str):
            from cotyledon.wsgi._app_loader import load_app_in_worker  # noqa: PLC0415

            app = load_app_in_worker(app, pythonpath=config.pythonpath)
        assert callable(app)
        self.access_log = _open_access_log(config)
        self.recycler = _make_recycler(config, worker_id)
        self.slot = _slot_writer(scoreboard)
        # One watcher is enough: worker 0's (its replacement starts a new one). Its
        # baseline is taken now, right after the import, so no edit slips in between.
        self.reloader = _make_reloader(config) if worker_id == 0 else None
        if self.reloader is not None:
            self.reloader.scan_nowait()
        if threading.current_thread() is threading.main_thread():
            _stackdump.arm()  # SIGUSR2: every thread's stack to stderr (hung workers)
            signal.signal(signal.SIGUSR1, self._on_sigusr1)
        for sock in sockets:
            sock.setblocking(False)
        counted = self.access_log is not None or self.recycler.enabled or self.slot is not None
        self.server = Server(
            app,
            config,
            sockets,
            on_request_done=self._request_done if counted else None,
            on_request_start=self.slot.request_started if self.slot is not None else None,
            heartbeat=self.slot.heartbeat if self.slot is not None else None,
        )

    def _on_sigusr1(self, signum: int, frame: object) -> None:
        # Not in the handler itself: the log's lock may be held by the code it interrupted.
        threading.Thread(target=self._reopen_logs, name="reopen-logs", daemon=True).start()

    def _reopen_logs(self) -> None:
        _logfiles.reopen_log_files()
        if self.access_log is not None:
            self.access_log.reopen()

    def run(self) -> None:
        self.recycler.start()
        if self.reloader is not None:
            self.reloader.start()
        if self.slot is not None:
            self.slot.set_status(SlotStatus.READY)
        self.server.serve_forever()

    def terminate(self) -> None:
        self.recycler.stop()
        if self.reloader is not None:
            self.reloader.stop()
        budget, server_stopping = self._stop_budget()
        if self.slot is not None:
            self.slot.set_status(SlotStatus.DRAINING)
        if not self.server.stop(budget, drain_backlog=server_stopping):
            LOG.warning(
                "Worker %s: requests still running after %.1fs, stopping anyway",
                self.worker_id,
                self.config.graceful_timeout,
            )
        if self.access_log is not None:
            self.access_log.close()

    def _stop_budget(self) -> tuple[float, bool]:
        """Serve through the shutdown delay when the whole server stops; then the seconds
        left to drain, and whether the server (not only this worker) is stopping."""
        requested_at = self.stop_notice.requested_at() if self.stop_notice else None
        if requested_at is None:  # replaced or recycled: the other workers accept
            return self.config.graceful_timeout, False
        plan = StopPlan(self.config.shutdown_delay, requested_at)
        delay = plan.accept_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # this terminate thread only: run() goes on serving
        left = requested_at + self.config.graceful_timeout - time.monotonic()
        return max(left, 0.0), True

    def _request_done(
        self, conn: Connection, environ: dict[str, Any], status: int, size: int, start: float
    ) -> None:
        if self.slot is not None:
            self.slot.request_finished(time.time() - start, status)
        if self.recycler.enabled:
            self.recycler.request_done()
        if self.access_log is None:
            return
        self.access_log.log(
            remote_addr=environ.get("REMOTE_ADDR") or "-",
            method=environ.get("REQUEST_METHOD", "-"),
            target=environ.get("RAW_URI", "-"),
            protocol=environ.get("SERVER_PROTOCOL", "-"),
            status=status,
            size=size,
            referer=environ.get("HTTP_REFERER"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            user=environ.get("REMOTE_USER"),
            start_time=start,
            duration=time.time() - start,
        )


def _slot_writer(scoreboard: Scoreboard | None) -> SlotWriter | None:
    """This worker's scoreboard slot, assigned by the master just before the fork."""
    from cotyledon.wsgi import _master  # noqa: PLC0415

    if scoreboard is None or _master.assigned_slot is None:
        return None
    return scoreboard.writer(_master.assigned_slot)


def _make_reloader(config: ServerConfig) -> Any:
    if not config.reload:
        return None
    from cotyledon.wsgi._reloader import Reloader  # noqa: PLC0415 - development only

    logs = (config.access_log_file, config.error_log_file)
    return Reloader(_code_changed, extra_paths=config.reload_extra_file, ignore_paths=logs)


def _code_changed(paths: list[str]) -> None:
    """The reloader saw compiling changes: SIGHUP to the master replaces every worker."""
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    LOG.info("Changed: %s; replacing the workers", shown)
    os.kill(os.getppid(), signal.SIGHUP)


def _make_recycler(config: ServerConfig, worker_id: int) -> Recycler:
    policy = RecyclePolicy(
        max_requests=config.max_requests,
        max_requests_jitter=config.max_requests_jitter,
        max_age=config.max_age,
        max_age_jitter=config.max_age_jitter,
        max_memory=config.max_memory,
    )
    return Recycler(
        policy, memory_check_interval=config.memory_check_interval, name=f"Worker {worker_id}"
    )


def _open_access_log(config: ServerConfig) -> Any:
    if not config.access_log_file:
        return None
    from cotyledon.wsgi._access_log import AccessLog  # noqa: PLC0415

    # "-" is standard output (gunicorn's convention); None would mean "no access log".
    return AccessLog(config.access_log_file, config.access_log_format)
