"""The preload zygote: a child of the master that imports the app once and forks the
workers, so a reload runs new code and workers still share the app's memory.

Design: the master never imports the app (``--preload``). A *zygote*, forked from the
master, imports it, calls ``gc.freeze()`` and then forks a worker whenever the master asks
(a :class:`cotyledon._spawner.WorkerSpawner`). A SIGHUP starts a new zygote that imports
the new code; once it reports "loaded" the progressive replacement forks the new workers
from it and the old zygote exits; if it cannot load the app, the reload is aborted and
the old zygote and workers go on. Unlike a re-exec of the master (nginx, gunicorn USR2),
the master keeps its pid (PID 1 in a container, systemd's main PID) and every worker is
its child: the zygote double-forks (zygote -> intermediate -> worker, the intermediate
exits at once) and the master is a child subreaper, so the worker is reparented to the
master, which reaps it like any worker. The worker waits to be the master's child before
it runs the core's child entry (which arms PR_SET_PDEATHSIG against the master).

Protocol (a SOCK_SEQPACKET socketpair per zygote, pickled tuples):

* zygote -> master, once: ``("loaded",)`` or ``("error", message)`` (then it exits with
  :data:`~cotyledon.wsgi._app_loader.APP_LOAD_ERROR`);
* master -> zygote: ``(worker fields)`` with the seatbelt and control fds (SCM_RIGHTS);
  reply ``("pid", pid)`` or ``("error", message)``, within :data:`SPAWN_TIMEOUT`.

A zygote dies with the master (PR_SET_PDEATHSIG, and EOF on its socket), ignores the
signals meant for workers, and is killed by the master when it exits.

Must not: serve requests, or be reaped by anyone but :class:`ZygoteSpawner`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import select
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cotyledon import _processes, _service_worker, _signals, _utils
from cotyledon._extension import QuietExtension
from cotyledon._spawner import ChildSetup, ReloadAnswer
from cotyledon.types import ServiceId, WorkerId
from cotyledon.wsgi import _logfiles
from cotyledon.wsgi._app_loader import APP_LOAD_ERROR, AppLoadError, load_app
from cotyledon.wsgi._zygote_state import Death, Zygotes

LOG = logging.getLogger("cotyledon.wsgi.zygote")

#: Seconds the master waits for a zygote to fork a worker (a fork takes milliseconds).
SPAWN_TIMEOUT = 10.0
#: Seconds a forked worker waits to be reparented to the master (the intermediate
#: process exits right after the fork: microseconds).
REPARENT_TIMEOUT = 5.0
#: Signals a zygote ignores (the terminal's, and the ones the master handles for its
#: workers); its workers reset them.
ZYGOTE_IGNORES = (
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
_MAX_MESSAGE = 1 << 20


class ZygoteError(OSError):
    """A zygote could not fork a worker (it died, timed out or failed): the core retries
    the spawn later, as for a failed fork."""


class _Zygote:
    """The master's handle on one zygote."""

    __slots__ = ("hooks", "pid", "sock")

    def __init__(self, pid: int, sock: socket.socket, hooks: list[Any]) -> None:
        self.pid = pid
        self.sock = sock
        #: The on_new_worker hooks it inherited (sent again only if they changed).
        self.hooks = hooks


class ZygoteSpawner(QuietExtension):
    """Starts the workers of one WSGI service from a zygote (see the module docstring).

    It is also a master extension (attached by ``add()``): the master waits on the
    zygotes' sockets and the loading deadline with its own fds.

    :param spec: the app spec (``module:app``).
    :param pythonpath: ``--pythonpath``.
    :param factory: the worker's service class; a worker is
        ``factory(worker_id, app, *worker_args)`` with the app the zygote loaded.
    :param worker_args: the rest of the worker's arguments (inherited by the zygote).
    :param load_timeout: seconds a reload's zygote has to load the app (``--start-timeout``).
    :param master_fds: the master's fds a zygote closes first thing (the status page's).
    :param slot: per-worker data to hand the zygote before each fork (the scoreboard slot
        ``before_fork`` claimed), and ``set_slot`` to set it in the zygote.
    """

    signals: tuple[int, ...] = ()

    def __init__(
        self,
        spec: str,
        *,
        pythonpath: Sequence[str],
        factory: Callable[..., Any],
        worker_args: tuple[Any, ...],
        load_timeout: float,
        master_fds: Callable[[], list[int]],
        slot: Callable[[], int | None],
        set_slot: Callable[[int | None], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.pythonpath = tuple(pythonpath)
        self.factory = factory
        self.worker_args = worker_args
        self.load_timeout = load_timeout
        self.manager: Any = None  # the cotyledon.ServiceManager (its hooks, inherited)
        self.state = Zygotes()
        self._master_fds = master_fds
        self._slot = slot
        self._set_slot = set_slot
        self._clock = clock
        self._zygotes: dict[int, _Zygote] = {}  # pid -> every zygote not yet reaped
        self._answer: ReloadAnswer | None = None
        self._warned_hooks = False
        self._closed = False

    # -- start ---------------------------------------------------------------------------

    def start(self, setup: ChildSetup | None = None, timeout: float | None = None) -> int:
        """Fork a zygote and wait (``timeout`` seconds, None: as long as the import takes)
        until it has loaded the app; it forks the workers from now on.

        :raises AppLoadError: it cannot load the app (the message says why).
        """
        zygote = self._fork_zygote(setup)
        try:
            report = _recv(zygote.sock, timeout)
        except OSError as exc:
            report = ("error", f"the zygote did not load the app: {exc}")
        if report != ("loaded",):
            raise AppLoadError(self._failure(zygote, report))
        self.state.started(zygote.pid)
        LOG.debug("Zygote %d loaded %s", zygote.pid, self.spec)
        return zygote.pid

    def _failure(self, zygote: _Zygote, report: tuple[Any, ...] | None) -> str:
        """Stop a zygote that failed; what went wrong, from its report or its exit."""
        code = self._kill(zygote)
        if report is not None and report[0] == "error":
            return str(report[1])
        return f"the zygote {_exit_text(code)} while loading {self.spec!r}"

    def _fork_zygote(self, setup: ChildSetup | None) -> _Zygote:
        theirs, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        master_pid = os.getpid()
        close = list(self._master_fds())
        signals: tuple[int, ...] = ()
        if setup is not None:
            close.extend((*setup.master_fds, setup.seatbelt_fd, setup.control_fd))
            signals = setup.master_signals
        hooks = list(self._inherited_hooks())
        with _signals.blocked(_signals.all_signals()) as mask:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the zygote never returns from here
                code = 1
                try:
                    ours_fd = ours.fileno()
                    ours.close()
                    for other in self._zygotes.values():  # the master's ends: not ours
                        with contextlib.suppress(OSError):
                            os.close(other.sock.detach())
                    self._zygotes.clear()
                    # ``setup`` may predate this socketpair, whose fds reuse closed numbers.
                    keep = (theirs.fileno(), ours_fd)
                    fds = [fd for fd in close if fd >= 0 and fd not in keep]
                    _signals.reset_in_child(signals, fds)
                    self._zygote_main(theirs, master_pid, mask)
                except BaseException:
                    _utils.LOG.exception("Unhandled exception in the zygote")
                finally:
                    os._exit(code)
        theirs.close()
        zygote = _Zygote(pid, ours, hooks)
        self._zygotes[pid] = zygote
        return zygote

    def _inherited_hooks(self) -> list[Any]:
        hooks = getattr(self.manager, "_hooks", None)
        return list(hooks.get("new_worker", ())) if isinstance(hooks, dict) else []

    def status(self) -> tuple[int | None, int]:
        """For the status page: the zygote that forks now (None: none) and the generation
        of the code it loaded."""
        return self.state.current, self.state.generation

    # -- WorkerSpawner -------------------------------------------------------------------

    def spawn(self, config: _service_worker.WorkerConfig, setup: ChildSetup) -> int:
        """Ask the current zygote (a new one if it died) to fork the worker."""
        slot = self._slot()
        for _ in range(2):  # a zygote found dead is replaced once
            zygote = self._current_zygote(config.worker_id, setup)
            request = (
                config.service_id,
                config.worker_id,
                config.graceful_shutdown_timeout,
                config.master_pid,
                slot,
                self._hooks_to_send(zygote, config.on_new_worker),
            )
            try:
                socket.send_fds(
                    zygote.sock, [pickle.dumps(request)], [setup.seatbelt_fd, setup.control_fd]
                )
                reply = _recv(zygote.sock, SPAWN_TIMEOUT)
            except OSError as exc:  # dead (EPIPE) or stuck (timed out): replace it
                reply = None
                self._forget(zygote, f"it did not answer: {exc}")
            else:
                if reply is None:
                    self._forget(zygote, "")
            if reply is not None and reply[0] == "pid":
                return int(reply[1])
            if reply is not None:
                raise ZygoteError(f"the zygote (pid {zygote.pid}) cannot fork: {reply[1]}")
        raise ZygoteError("the zygote died twice in a row")

    def _current_zygote(self, worker_id: int, setup: ChildSetup) -> _Zygote:
        zygote = self._zygotes.get(self.state.current or -1)
        if zygote is not None:
            return zygote
        LOG.warning("No zygote to fork worker %d from: starting one", worker_id)
        try:
            pid = self.start(setup, self.load_timeout)
        except AppLoadError as exc:
            raise ZygoteError(f"a new zygote cannot load the app: {exc}") from None
        return self._zygotes[pid]

    def _hooks_to_send(self, zygote: _Zygote, hooks: Sequence[Any]) -> list[Any] | None:
        """The on_new_worker hooks if they changed since the zygote was forked and can be
        pickled; None: the zygote uses its own copy."""
        if list(hooks) == zygote.hooks:
            return None
        try:
            pickle.dumps(list(hooks))
        except Exception:
            if not self._warned_hooks:
                self._warned_hooks = True
                LOG.warning(
                    "on_new_worker hooks registered after the app was loaded cannot be "
                    "sent to the zygote (not picklable): they run from the next reload"
                )
            return None
        return list(hooks)

    def prepare_reload(self, setup: ChildSetup, answer: ReloadAnswer) -> None:
        LOG.info("Reload: a new zygote imports %s", self.spec)
        zygote = self._fork_zygote(setup)
        self._answer = answer
        for pid in self.state.begin_reload(zygote.pid, self._clock(), self.load_timeout):
            self._retire(pid)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for zygote in list(self._zygotes.values()):
            self._kill(zygote)

    # -- MasterExtension -----------------------------------------------------------------

    def read_fds(self) -> list[int]:
        # Every zygote's socket: watched, and closed in the workers the master forks.
        return [z.sock.fileno() for z in self._zygotes.values()]

    def on_ready(self, readable: list[int], writable: list[int]) -> None:
        for zygote in list(self._zygotes.values()):
            if zygote.sock.fileno() in readable:
                self._on_report(zygote)

    def _on_report(self, zygote: _Zygote) -> None:
        try:
            report = _recv(zygote.sock, 0)
        except OSError as exc:
            report = ("error", str(exc))
        if report is not None and report[0] == "error":
            self._forget(zygote, str(report[1]))
            return
        if report == ("loaded",):
            retired = self.state.loaded(zygote.pid)
            if retired is None:
                return
            LOG.info(
                "Zygote %d loaded the new code (generation %d): replacing the workers",
                zygote.pid,
                self.state.generation,
            )
            for pid in retired:
                self._retire(pid)
            self._reply("")
            return
        self._forget(zygote, "")

    def _forget(self, zygote: _Zygote, error: str, code: int | None = None) -> None:
        """A zygote failed or died (``error`` from its report, or ""): stop and reap it
        (``code``: reaped already, with that exit code), and act on what that means."""
        if code is None:
            code = self._kill(zygote)
        elif self._zygotes.pop(zygote.pid, None) is not None:
            zygote.sock.close()
        error = error or f"the zygote {_exit_text(code)}"
        death = self.state.died(zygote.pid)
        if death is Death.LOADING:
            self._reply(f"the new code cannot be loaded: {error}")
        elif death is Death.CURRENT:
            LOG.error(
                "Zygote (pid %d) lost: %s; the next worker starts a new one", zygote.pid, error
            )

    def _reply(self, error: str) -> None:
        answer, self._answer = self._answer, None
        if answer is not None:
            answer(error)

    def next_deadline(self) -> float | None:
        return self.state.next_deadline()

    def on_tick(self, now: float) -> None:
        late = self.state.maybe_late(now)
        if late is not None and late in self._zygotes:
            self._kill(self._zygotes[late])
            self._reply(f"the new code did not load within {self.load_timeout:g}s")
        for zygote in list(self._zygotes.values()):
            for _, code in _processes.reap([zygote.pid]):  # died; EOF not read yet
                self._forget(zygote, "", code)

    def on_exited(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        pass

    # -- helpers -------------------------------------------------------------------------

    def _retire(self, pid: int) -> None:
        zygote = self._zygotes.get(pid)
        if zygote is not None:
            LOG.debug("Zygote %d retires", pid)
            self._kill(zygote)

    def _kill(self, zygote: _Zygote) -> int:
        """SIGKILL a zygote (it holds no state), reap it; its exit code (255: reaped
        already)."""
        if self._zygotes.pop(zygote.pid, None) is None:
            return 255
        zygote.sock.close()
        _processes.send_signal([zygote.pid], signal.SIGKILL)
        try:
            _, status = os.waitpid(zygote.pid, 0)
        except ChildProcessError:
            return 255
        return _processes.exit_code(status)

    # -- in the zygote -------------------------------------------------------------------

    def _zygote_main(self, sock: socket.socket, master_pid: int, mask: set[int]) -> NoReturn:
        for signum in ZYGOTE_IGNORES:
            signal.signal(signum, signal.SIG_IGN)
        _processes.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != master_pid:
            os._exit(0)
        _signals.restore_mask(mask)
        _utils.setproctitle(f"{_utils.get_process_name()}: zygote")
        try:
            app = load_app(self.spec, pythonpath=self.pythonpath)
        except AppLoadError as exc:
            _send(sock, ("error", str(exc)))
            os._exit(APP_LOAD_ERROR)
        # What the workers inherit stays shared: their collector skips it. No
        # gc.collect() first: it writes to every object the zygote shares with the master,
        # which copies those pages (measured: master USS 5.7 -> 11.4 MiB, hello app).
        gc.freeze()
        _send(sock, ("loaded",))
        hooks = self._inherited_hooks()
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 2)
            except OSError:
                os._exit(0)
            if not data:  # the master is gone
                os._exit(0)
            reply: tuple[Any, ...]
            try:
                request = pickle.loads(data)  # noqa: S301 - from our master, over a socketpair
                reply = ("pid", self._fork_worker(sock, app, request, fds, hooks))
            except Exception as exc:
                reply = ("error", f"{type(exc).__name__}: {exc}")
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            _send(sock, reply)

    def _fork_worker(
        self,
        sock: socket.socket,
        app: Any,
        request: tuple[Any, ...],
        fds: list[int],
        hooks: list[Any],
    ) -> int:
        service_id, worker_id, timeout, master_pid, slot, new_hooks = request
        if new_hooks is not None:
            hooks[:] = new_hooks
        seatbelt_fd, control_fd = fds
        config = _service_worker.WorkerConfig(
            service_id=service_id,
            worker_id=worker_id,
            factory=self.factory,
            args=(app, *self.worker_args),
            kwargs={},
            graceful_shutdown_timeout=timeout,
            on_new_worker=list(hooks),
            master_pid=master_pid,
        )
        self._set_slot(slot)
        read_fd, write_fd = os.pipe()
        with _signals.blocked(_signals.all_signals()) as mask:
            middle = os.fork()
            if middle == 0:  # pragma: no cover - the intermediate never returns
                try:
                    os.close(read_fd)
                    pid = os.fork()
                    if pid == 0:
                        os.close(write_fd)
                        _await_parent(master_pid)
                        # The zygote ignores SIGUSR1: its log files may have been rotated.
                        _logfiles.reopen_log_files()
                        _service_worker.forked_main(
                            config,
                            master_signals=ZYGOTE_IGNORES,
                            mask=mask,
                            master_fds=(sock.fileno(),),
                            seatbelt_fd=seatbelt_fd,
                            control_fd=control_fd,
                        )
                    os.write(write_fd, str(pid).encode())
                finally:
                    os._exit(0)
        os.close(write_fd)
        try:
            data = b""
            while chunk := os.read(read_fd, 64):
                data += chunk
        finally:
            os.close(read_fd)
            os.waitpid(middle, 0)
        if not data:
            raise OSError("the intermediate process could not fork")
        return int(data)


def _await_parent(master_pid: int) -> None:
    """In a new worker: wait (bounded) until the intermediate has exited and the master
    adopted us, so PR_SET_PDEATHSIG is armed against the master, not the intermediate."""
    deadline = time.monotonic() + REPARENT_TIMEOUT
    while os.getppid() != master_pid and time.monotonic() < deadline:
        time.sleep(0.0005)


def _send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):
        sock.send(pickle.dumps(message))


def _recv(sock: socket.socket, timeout: float | None) -> tuple[Any, ...] | None:
    """One message; None at EOF (the zygote died).

    :raises OSError: nothing came within ``timeout`` seconds (``"timed out"``).
    """
    poller = select.poll()  # not select(): the master may hold fds above 1024
    poller.register(sock, select.POLLIN)
    if not poller.poll(None if timeout is None else timeout * 1000):
        raise OSError("timed out")
    data = sock.recv(_MAX_MESSAGE)
    if not data:
        return None
    message: tuple[Any, ...] = pickle.loads(data)  # noqa: S301 - our own socketpair
    return message


def _exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by signal {_processes.signal_name(-code)}"
    return f"exited with status {code}"
