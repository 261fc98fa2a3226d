"""The worker driver: everything a worker process does, from the fork to its exit.

Job: in the child, right after ``fork()`` (signals still blocked by the master): drop the
master's signal plumbing and fds, arm the seatbelt, scrub systemd's variables, install the
worker's own self-pipe, build the service, run the ``on_new_worker`` hooks, report
"started" to the master, run ``Service.run()`` in a thread and handle signals (SIGTERM:
graceful ``terminate()`` under a deadline; SIGINT: exit now; SIGHUP: ``reload()``;
SIGALRM: the deadline passed) until the process exits. The process always ends in
``os._exit()``: a worker never returns into the master's stack.

Logs upstream's worker lines, byte for byte, on ``cotyledon._service_worker``.

Must not: talk to systemd (only the master does), or outlive the master.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from cotyledon import _control, _event_loop, _seatbelt, _signals, _systemd, _utils
from cotyledon._record import Record
from cotyledon._service import Service
from cotyledon.types import ServiceId, WorkerId

LOG = logging.getLogger(__name__)

WORKER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP)
#: Bound on terminate() after the master died when no timeout is configured (0), so a
#: hanging terminate() cannot keep an orphan alive forever (spec/api.md section 2, holes).
ORPHAN_TIMEOUT = 60.0
#: Exit status of a worker whose run(), terminate() or reload() raised.
EXIT_EXCEPTION = 2


class WorkerConfig(Record):
    """What a worker needs to start (picklable for spawn/forkserver contexts)."""

    __slots__ = (
        "args",
        "factory",
        "graceful_shutdown_timeout",
        "kwargs",
        "master_pid",
        "on_new_worker",
        "service_id",
        "worker_id",
    )

    service_id: ServiceId
    worker_id: WorkerId
    factory: Callable[..., Service]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    graceful_shutdown_timeout: float
    on_new_worker: Sequence[Callable[..., Any]]
    master_pid: int

    def __init__(
        self,
        *,
        service_id: ServiceId,
        worker_id: WorkerId,
        factory: Callable[..., Service],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        graceful_shutdown_timeout: float,
        on_new_worker: Sequence[Callable[..., Any]],
        master_pid: int,
    ) -> None:
        self.service_id = service_id
        self.worker_id = worker_id
        self.factory = factory
        self.args = args
        self.kwargs = kwargs
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.on_new_worker = on_new_worker
        self.master_pid = master_pid


def _system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _flush_and_exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(OSError, ValueError):
            handler.flush()
    os._exit(code)


def forked_main(
    config: WorkerConfig,
    *,
    master_signals: Sequence[int],
    mask: Iterable[int],
    master_fds: Sequence[int],
    seatbelt_fd: int,
    control_fd: int,
) -> NoReturn:
    """Entry point in a child forked by the master (every signal blocked; ``mask`` is the
    signal mask to restore once the worker's own handlers are in place). Never returns."""
    code = EXIT_EXCEPTION
    try:
        _signals.reset_in_child(master_signals, master_fds)
        _control.attach_worker(control_fd)
        worker = ServiceWorker(config, seatbelt_fd)
        code = worker.main(mask)
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except BaseException:
        _utils.LOG.exception("Unhandled exception")
    _flush_and_exit(code)


def spawned_main(config: WorkerConfig, seatbelt: Any, control: Any) -> NoReturn:
    """Entry point of a worker started through a spawn/forkserver multiprocessing context;
    ``seatbelt`` and ``control`` are multiprocessing Connections wrapping the pipes."""
    code = EXIT_EXCEPTION
    try:
        _control.attach_worker(control.fileno())
        worker = ServiceWorker(config, seatbelt.fileno())
        code = worker.main(None)
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except BaseException:
        _utils.LOG.exception("Unhandled exception")
    _flush_and_exit(code)


class ServiceWorker:
    """One worker process: the service object and its signal loop."""

    def __init__(self, config: WorkerConfig, seatbelt_fd: int) -> None:
        self.config = config
        self.seatbelt_fd: int | None = seatbelt_fd
        self.service: Service | None = None
        self.title = ""
        self._lock = threading.Lock()
        self._terminating = False
        self._parent_died = False
        self._exit_code: int | None = None
        self._armed_timeout: float | None = None
        # The master, or a fork server for workers started through a forkserver context.
        self._parent_pid = os.getppid()
        self._signals: _signals.SignalPipe | None = None

    # -- start-up --------------------------------------------------------------------

    def main(self, mask: Iterable[int] | None) -> int:
        """Start the worker and run its loop; return the exit status. ``mask``: the signal
        mask to restore after the worker's handlers are installed (None: leave it)."""
        if os.getppid() == self.config.master_pid and not _seatbelt.arm_in_child(
            self.config.master_pid
        ):
            return 0
        _systemd.scrub_child_environ()
        # A forked child shares its parent's random state: reseed it. Not imported yet
        # means nothing to reseed (it seeds itself from os.urandom when imported).
        rng = sys.modules.get("random")
        if rng is not None:
            rng.seed()
        self._signals = _signals.SignalPipe(WORKER_SIGNALS)
        self._signals.install()
        if mask is not None:
            _signals.restore_mask(mask)
        self.service = self._build_service()
        _utils.setproctitle(_utils.worker_title(self._name(), self.config.worker_id))
        _utils.run_hooks(
            "new_worker",
            self.config.on_new_worker,
            self.config.service_id,
            self.config.worker_id,
            self.service,
        )
        _control.send_to_master("started")
        LOG.debug("Run service %s", self.title)
        threading.Thread(target=self._run_service, name="service-run", daemon=True).start()
        return self._loop()

    def _build_service(self) -> Service:
        cfg = self.config
        service = cfg.factory(cfg.worker_id, *cfg.args, **cfg.kwargs)
        # Subclasses that skip super().__init__() still get these (upstream does the same).
        service.worker_id = cfg.worker_id
        if not hasattr(service, "pid"):
            service.pid = os.getpid()
        self.service = service
        self.title = f"{self._name()}({cfg.worker_id}) [{os.getpid()}]"
        return service

    def _name(self) -> str:
        name = getattr(self.service, "name", None)
        return str(name) if name else type(self.service).__name__

    # -- loop ------------------------------------------------------------------------

    def _loop(self) -> int:
        assert self._signals is not None
        while self._exit_code is None:
            fds = [self._signals.read_fd]
            if self.seatbelt_fd is not None:
                fds.append(self.seatbelt_fd)
            ready = _event_loop.wait(fds, None)
            if self.seatbelt_fd in ready and _seatbelt.parent_gone(self.seatbelt_fd):
                self.seatbelt_fd = None
                if self._note_parent_death():
                    self._on_sigterm()
            for signum in self._signals.read():
                self._dispatch(signum)
        return self._exit_code

    def _dispatch(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            if os.getppid() != self._parent_pid:  # reparented: PR_SET_PDEATHSIG fired
                self._note_parent_death()
            self._on_sigterm()
        elif signum == signal.SIGINT:
            LOG.info("Caught SIGINT signal, instantaneous exiting of service %s", self.title)
            _flush_and_exit(1)
        elif signum == signal.SIGALRM:
            LOG.info(
                "Graceful shutdown timeout (%s) exceeded, exiting %s now.",
                self._armed_timeout if self._armed_timeout is not None else self._timeout(),
                self.title,
            )
            _flush_and_exit(1)
        elif signum == signal.SIGHUP:
            self._on_sighup()

    def _finish(self, code: int) -> None:
        """From any thread: end the process with ``code`` (the loop does the exit)."""
        if self._exit_code is None:
            self._exit_code = code
        if self._signals is not None:
            self._signals.wake()

    def _note_parent_death(self) -> bool:
        if self._parent_died:
            return False
        self._parent_died = True
        LOG.info("Parent process has died unexpectedly, %s exiting", self.title)
        return True

    # -- signals ---------------------------------------------------------------------

    def _timeout(self) -> float:
        own = getattr(self.service, "graceful_shutdown_timeout", None)
        return own if own is not None else self.config.graceful_shutdown_timeout

    def _on_sigterm(self) -> None:
        if self._terminating:
            return
        self._terminating = True
        LOG.info("Caught SIGTERM signal, graceful exiting of service %s", self.title)
        timeout = self._timeout()
        if not timeout and self._parent_died:
            timeout = self.config.graceful_shutdown_timeout or ORPHAN_TIMEOUT
        if timeout and timeout > 0:
            self._armed_timeout = timeout
            signal.setitimer(signal.ITIMER_REAL, timeout)
        self._in_thread("service-terminate", self._terminate)

    def _on_sighup(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        self._in_thread("service-reload", self._reload)

    def _in_thread(self, name: str, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

    # -- threads ---------------------------------------------------------------------

    def _guarded(self, call: Callable[[], None]) -> int | None:
        """Run a service method: None if it returned, else the exit status it implies."""
        try:
            call()
        except SystemExit as exc:
            return _system_exit_code(exc)
        except BaseException:
            _utils.LOG.exception("Unhandled exception")
            return EXIT_EXCEPTION
        return None

    def _run_service(self) -> None:
        assert self.service is not None
        code = self._guarded(self.service.run)
        if code is not None:
            self._finish(code)

    def _terminate(self) -> None:
        assert self.service is not None
        with self._lock:
            code = self._guarded(self.service.terminate)
        self._finish(code or 0)

    def _reload(self) -> None:
        assert self.service is not None
        service = self.service

        def reload() -> None:
            # oslo_config_glue re-reads the worker's config first (upstream <= 2.1.0).
            internal = getattr(service, "_on_reload_internal_hook", None)
            if internal is not None:
                internal()
            service.reload()

        try:
            code = self._guarded(reload)
        finally:
            self._lock.release()
        if code is not None:
            self._finish(code)
        elif type(self.service).reload is not Service.reload:
            _control.send_to_master("reloaded")
