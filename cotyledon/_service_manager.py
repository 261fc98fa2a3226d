"""``ServiceManager``: the public API of the master, and the driver of its event loop.

Job: check arguments and keep the configuration (``add``, ``reconfigure``,
``register_hooks``, thread-safe: other threads only queue commands and wake the loop);
then, in ``run()``, be the master: one thread, one blocking call (``poll()`` on the
signal self-pipe, the worker -> master control pipe and any multiprocessing sentinels,
timeout = the next deadline), and perform what the pure
:class:`~cotyledon._supervisor.Supervisor` decides: fork (signals blocked around it),
signal our own children (never the process group), run hooks, tell systemd, write
upstream's log lines on ``cotyledon._service_manager``, exit.

Must not: decide (the supervisor does), sleep, start threads, or reap a child it did not
fork.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from cotyledon import (
    _control,
    _event_loop,
    _processes,
    _seatbelt,
    _service_worker,
    _signals,
    _supervisor,
    _systemd,
    _utils,
)
from cotyledon import _supervisor as sv
from cotyledon._extension import MasterExtension
from cotyledon._record import Record
from cotyledon._replacement import RELOAD_MODES, ReplacePolicy
from cotyledon._restart_policy import GiveUpPolicy
from cotyledon._spawner import ChildSetup, WorkerSpawner
from cotyledon.types import (
    OnDeadWorkerHook,
    OnNewWorkerHook,
    OnReloadHook,
    OnTerminateHook,
    ServiceId,
    WorkerId,
)

LOG = logging.getLogger(__name__)
#: Our own lines (not cotyledon 2.x's): progressive replacement of workers.
REPLACE_LOG = logging.getLogger("cotyledon.replacement")

MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGCHLD)
EXIT_GAVE_UP = _supervisor.EXIT_GAVE_UP


class _ServiceConfig(Record):
    __slots__ = ("args", "factory", "kwargs", "service_id", "spawner", "workers")

    service_id: ServiceId
    factory: Callable[..., Any]
    workers: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    spawner: WorkerSpawner | None

    def __init__(  # noqa: PLR0917 - positional, as before the spawner
        self,
        service_id: ServiceId,
        factory: Callable[..., Any],
        workers: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        spawner: WorkerSpawner | None = None,
    ) -> None:
        self.service_id = service_id
        self.factory = factory
        self.workers = workers
        self.args = args
        self.kwargs = kwargs
        self.spawner = spawner


class ServiceManager:
    """Forks and supervises the workers of every service added to it.

    :param wait_interval: accepted for compatibility; upstream slept this long before
        every fork, our master never sleeps (forks happen at once, within the restart
        budget). Only a program calling :meth:`_slowdown_respawn_if_needed` sleeps it.
    :param graceful_shutdown_timeout: seconds the whole graceful shutdown may take before
        the remaining workers are SIGKILLed (0: no limit); also the default for services
        whose own ``graceful_shutdown_timeout`` is None.
    :param mp_context: None or a ``fork`` multiprocessing context: workers are forked
        directly. A ``spawn`` or ``forkserver`` context: workers are started through it
        (service class, args and new-worker hooks must be picklable). Read at each start.
        When None, the :attr:`mp_context` attribute reads as
        ``multiprocessing.get_context()`` (as in cotyledon 2.2) and that very object still
        means "fork directly", even where the default start method is forkserver
        (Python 3.14).
    :param max_restarts: opt-in give-up policy, the default of :meth:`add`: when a service
        restarts more than this many times within ``restart_period`` seconds, the manager
        stops and ``run()`` exits with status 3. None (default): never give up.
    :param restart_period: the window of ``max_restarts``, in seconds.
    :raises RuntimeError: a ServiceManager already exists in this process.
    """

    _process_runner_already_created = False

    def __init__(
        self,
        wait_interval: float = 0.01,
        graceful_shutdown_timeout: int = 60,
        mp_context: Any = None,
        *,
        max_restarts: int | None = None,
        restart_period: float = 5.0,
    ) -> None:
        if ServiceManager._process_runner_already_created:
            raise RuntimeError("Only one instance of ServiceManager per application is allowed")
        ServiceManager._process_runner_already_created = True
        self.wait_interval = wait_interval
        self._graceful_shutdown_timeout = graceful_shutdown_timeout
        #: The context reported when none was given; this object means "fork directly".
        self._default_mp_context: Any = None
        if mp_context is None:
            mp_context = self._default_mp_context = _utils.default_mp_context()
        self.mp_context: Any = mp_context
        #: Fork times of the compat :meth:`_slowdown_respawn_if_needed` (programs call it).
        self._forktimes: collections.deque[float] = collections.deque()
        self._give_up = _give_up_policy(max_restarts, restart_period)
        self._services: dict[ServiceId, _ServiceConfig] = {}
        self._hooks: dict[str, list[Callable[..., Any]]] = {
            "terminate": [],
            "reload": [],
            "new_worker": [],
            "dead_worker": [],
        }
        self._lock = threading.Lock()
        self._commands: collections.deque[sv.Event] = collections.deque()
        self._state = "new"
        self._shutdown_requested = False
        self._clock: Callable[[], float] = time.monotonic
        self._supervisor: sv.Supervisor | None = None
        self._signals: _signals.SignalPipe | None = None
        self._control: _control.ControlChannel | None = None
        self._seatbelt: _seatbelt.Seatbelt | None = None
        self._notifier: _systemd.Notifier | None = None
        self._events: collections.deque[sv.Event] = collections.deque()
        self._mp_procs: dict[int, Any] = {}
        self._fast_exit = False
        self._subreaper = False
        self._extensions: list[MasterExtension] = []
        #: Handlers of worker -> master messages, by kind: ``fn(pid, payload)``.
        self._control_handlers: dict[str, Callable[[int, str], None]] = {
            "started": lambda pid, _: self._feed(sv.WorkerStarted(pid)),
            "reloaded": lambda pid, _: self._feed(sv.WorkerReloaded(pid)),
            "health": self._on_health_message,
            "replace": lambda pid, why: self._feed(sv.ReplacementAsked(pid, why)),
            "notify": self._on_notify_message,
        }

    # -- configuration API -----------------------------------------------------------

    @property
    def graceful_shutdown_timeout(self) -> int:
        return self._graceful_shutdown_timeout

    def add(
        self,
        service: Callable[..., Any],
        workers: int = 1,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        max_restarts: int | None = None,
        restart_period: float | None = None,
        reload: str = "signal",
        max_surge: int = 1,
        start_timeout: float = 60.0,
        spawner: WorkerSpawner | None = None,
    ) -> ServiceId:
        """Add a service; its workers are ``service(worker_id, *args, **kwargs)``.

        Takes effect at once when called after :meth:`run` (from a hook or a thread).

        :param max_restarts: give-up policy of this service (default: the manager's).
        :param restart_period: its window in seconds (default: the manager's).
        :param reload: what SIGHUP does to this service's workers. ``"signal"`` (the
            default, as cotyledon 2.x): each worker gets SIGHUP and runs its ``reload()``.
            ``"replace"``: the workers are replaced progressively: a new worker is forked
            for a slot, and only once it has entered ``run()`` does the old one get
            SIGTERM (it finishes what it is doing and exits).
        :param max_surge: with ``reload="replace"``, workers replaced at the same time.
        :param start_timeout: seconds a replacement has to enter ``run()``; past that, or
            if it dies first, the replacement is aborted and the old worker keeps serving.
        :param spawner: what starts this service's workers instead of a fork of the master
            (see :mod:`cotyledon._spawner`; cotyledon.wsgi's zygote). None: the master
            forks them (or starts them through ``mp_context``).
        :returns: the new service's id.
        :raises TypeError: ``service`` is not callable.
        :raises ValueError: ``workers`` is not an int >= 1, or a replacement setting is
            invalid.
        """
        _utils.check_callable(service, "service")
        _utils.check_workers(workers, 1)
        if reload not in RELOAD_MODES:
            raise ValueError(f"reload must be one of {', '.join(RELOAD_MODES)}, not: {reload!r}")
        policy = ReplacePolicy(max_surge=max_surge, start_timeout=start_timeout)
        give_up = self._give_up
        if max_restarts is not None:
            period = restart_period or (give_up.period if give_up else 5.0)
            give_up = _give_up_policy(max_restarts, period)
        service_id = ServiceId(uuid.uuid4())
        config = _ServiceConfig(
            service_id, service, workers, tuple(args or ()), kwargs or {}, spawner
        )
        with self._lock:
            self._services[service_id] = config
            name = getattr(service, "name", None) or getattr(service, "__name__", "")
            self._queue(
                sv.ServiceAdded(
                    service_id,
                    workers,
                    give_up,
                    name=str(name),
                    reload=reload,
                    replace=policy,
                    prepare=spawner is not None,
                )
            )
        return service_id

    def reconfigure(self, service_id: ServiceId, workers: int) -> None:
        """Change the number of workers of a service, at once (surplus workers are stopped
        and not respawned).

        :raises ValueError: unknown ``service_id``, or ``workers`` below
            ``1 - current workers`` (upstream's quirk: 0 and negatives stop every worker).
        """
        with self._lock:
            try:
                config = self._services[service_id]
            except KeyError:
                raise ValueError(f"{service_id} service id doesn't exists") from None
            _utils.check_workers(workers, 1 - config.workers)
            config.workers = workers
            self._forktimes.clear()
            self._queue(sv.Reconfigured(service_id, workers))

    def register_hooks(
        self,
        on_terminate: OnTerminateHook | None = None,
        on_reload: OnReloadHook | None = None,
        on_new_worker: OnNewWorkerHook | None = None,
        on_dead_worker: OnDeadWorkerHook | None = None,
    ) -> None:
        """Register hooks; each kind runs in registration order.

        * ``on_terminate()``: master, at graceful shutdown, before workers are signalled;
        * ``on_reload()``: master, on SIGHUP, before SIGHUP is forwarded to the workers;
        * ``on_new_worker(service_id, worker_id, service)``: in the worker, before run();
        * ``on_dead_worker(service_id, worker_id, exit_code)``: master, when a worker died,
          before it is respawned.

        :raises TypeError: one of them is not callable.
        """
        hooks = {
            "terminate": ("on_terminate", on_terminate),
            "reload": ("on_reload", on_reload),
            "new_worker": ("on_new_worker", on_new_worker),
            "dead_worker": ("on_dead_worker", on_dead_worker),
        }
        for arg_name, hook in hooks.values():
            if hook is not None:
                _utils.check_callable(hook, arg_name)
        with self._lock:
            for kind, (_, hook) in hooks.items():
                if hook is not None:
                    self._hooks[kind].append(hook)

    def _attach_extension(self, extension: MasterExtension) -> None:
        """Run ``extension`` in the master's event loop (for cotyledon.wsgi; see
        :mod:`cotyledon._extension`). Call before :meth:`run`, from the main thread."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError("extensions must be attached before run()")
            self._extensions.append(extension)

    def _give_up_now(self, reason: str) -> None:
        """Stop the manager as a give-up policy does: ``run()`` exits with status 3 and
        sd-notify ``STATUS=`` says ``reason``. For extensions, from the master's loop (a
        hook such as ``on_exited``): the stop comes before the event being handled."""
        self._feed(sv.StopRequested(EXIT_GAVE_UP, reason))

    def _master_signals(self) -> tuple[int, ...]:
        extra = [s for ext in self._extensions for s in ext.signals if s not in MASTER_SIGNALS]
        return MASTER_SIGNALS + tuple(dict.fromkeys(extra))

    def _notify_extensions(self, method: str, *args: Any) -> None:
        for extension in self._extensions:
            try:
                getattr(extension, method)(*args)
            except Exception:
                LOG.exception("Master extension %r failed in %s()", extension, method)

    def _extension_fds(self) -> tuple[list[int], list[int]]:
        reads: list[int] = []
        writes: list[int] = []
        for extension in self._extensions:
            reads.extend(extension.read_fds())
            writes.extend(extension.write_fds())
        return reads, writes

    def _next_timeout(self) -> float | None:
        assert self._supervisor is not None
        now = self._clock()
        timeouts = [self._supervisor.next_timeout(now)]
        for extension in self._extensions:
            deadline = extension.next_deadline()
            if deadline is not None:
                timeouts.append(max(deadline - now, 0.0))
        return min((t for t in timeouts if t is not None), default=None)

    def shutdown(self) -> None:
        """Ask the master to stop gracefully; returns at once. From any thread or hook.

        Before :meth:`run`, run() will stop at once; after run() ended, it does nothing.
        """
        LOG.info("Manager shutdown requested")
        with self._lock:
            if self._state == "new":
                self._shutdown_requested = True
                return
            if self._state == "done":
                return
        os.kill(os.getpid(), signal.SIGTERM)

    def _slowdown_respawn_if_needed(self) -> None:
        """cotyledon 2.x's rate limit, kept for programs that call it: one ``time.sleep``
        per call, 5 s ("Forking too fast, sleeping") when more than N fork times are
        recorded and the oldest is less than N seconds old (N: the configured workers of
        every service), else ``wait_interval``; then records this fork time.

        Our master never calls it (a throttled fork is a deadline of the service's
        restart budget, never a sleep). A program that patches it out, on the class or
        on the manager, gets instant respawns: the patched callable is called without
        arguments before each fork, as 2.x did, and the fork happens at once.
        """
        with self._lock:
            expected = sum(config.workers for config in self._services.values())
            too_fast = False
            if len(self._forktimes) > expected:
                # wall clock, as 2.x: suites written for it patch time.time
                too_fast = time.time() - self._forktimes[0] < expected
                self._forktimes.popleft()
        if too_fast:
            LOG.info("Forking too fast, sleeping")
            time.sleep(5)
        else:
            time.sleep(self.wait_interval)
        with self._lock:
            self._forktimes.append(time.time())

    def _respawn_gate(self, service_id: ServiceId, now: float) -> float:
        """Seconds before the service's next fork: its restart budget's answer, or 0 when
        the program patched :meth:`_slowdown_respawn_if_needed` out (called as 2.x did)."""
        slowdown = self._slowdown_respawn_if_needed
        if getattr(slowdown, "__func__", None) is not _OWN_SLOWDOWN:
            slowdown()
            return 0.0
        assert self._supervisor is not None
        return self._supervisor.respawn_delay(service_id, now)

    def _queue(self, event: sv.Event) -> None:
        """Under the lock: hand ``event`` to the master loop (waking it if running)."""
        self._commands.append(event)
        if self._state == "running" and self._signals is not None:
            self._signals.wake()

    # -- the master loop -------------------------------------------------------------

    def run(self) -> NoReturn:
        """Start the workers and supervise them until the manager stops.

        Never returns: ends with ``sys.exit(0)`` after a graceful shutdown, ``sys.exit(3)``
        when a give-up policy fired, ``os._exit(1)`` on SIGINT or when the graceful
        shutdown timed out. Must be called from the main thread.
        """
        self._setup()
        try:
            if self._shutdown_requested:  # shutdown() before run(): fork nothing
                LOG.info("Caught SIGTERM signal, graceful exiting of master process")
                self._feed(sv.StopRequested())
            else:
                self._feed(sv.Started())
            self._process()
            self._loop()
        finally:
            self._teardown()
        raise AssertionError("unreachable")  # pragma: no cover

    def _setup(self) -> None:
        with self._lock:
            if self._state != "new":
                raise RuntimeError("ServiceManager.run() can only be called once")
        with contextlib.suppress(OSError):
            os.setsid()
        _utils.setproctitle(_utils.master_title())
        with contextlib.suppress(OSError):
            _processes.libc()  # loaded once here rather than in every worker
        self._notifier = _systemd.Notifier.from_environ()
        self._supervisor = sv.Supervisor(
            graceful_shutdown_timeout=self._graceful_shutdown_timeout,
            watchdog_interval=self._notifier.watchdog_interval,
            extend_interval=sv.EXTEND_INTERVAL if self._notifier.enabled else None,
            respawn_gate=self._respawn_gate,
        )
        self._signals = _signals.SignalPipe(self._master_signals())
        self._control = _control.ControlChannel()
        self._seatbelt = _seatbelt.Seatbelt()
        try:
            self._signals.install()  # ValueError outside the main thread
        except BaseException:
            self._teardown()
            raise
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if others:
            # fork() copies only this thread: locks those threads hold stay held in workers.
            _utils.LOG.log(_utils.TRACE, "master forks with other threads alive: %s", others)
        with self._lock:
            self._state = "running"
            self._drain_commands()

    def _teardown(self) -> None:
        with self._lock:
            self._state = "done"
        self._notify_extensions("close")
        for service in list(self._services.values()):
            if service.spawner is not None:
                with contextlib.suppress(Exception):
                    service.spawner.close()
        for resource in (self._signals, self._control, self._seatbelt, self._notifier):
            if resource is not None:
                with contextlib.suppress(Exception):
                    if isinstance(resource, _signals.SignalPipe):
                        resource.restore()
                    resource.close()

    def _loop(self) -> None:
        assert self._supervisor is not None
        assert self._signals is not None
        assert self._control is not None
        while not self._supervisor.finished:
            fds = [self._signals.read_fd, self._control.read_fd]
            sentinels = {proc.sentinel: pid for pid, proc in self._mp_procs.items()}
            ext_reads, ext_writes = self._extension_fds()
            ready, writable = _event_loop.wait_rw(
                [*fds, *sentinels, *ext_reads], ext_writes, self._next_timeout()
            )
            _utils.LOG.log(_utils.TRACE, "master woke up: %s %s", ready, writable)
            if self._extensions:
                ext_ready = [fd for fd in ready if fd in ext_reads]
                if ext_ready or writable:
                    self._notify_extensions("on_ready", ext_ready, writable)
            if self._signals.read_fd in ready:
                self._on_signals(self._signals.read())
            if self._control.read_fd in ready:
                self._on_messages(self._control.read())
            self._reap_sentinels([sentinels[fd] for fd in ready if fd in sentinels])
            with self._lock:
                self._drain_commands()
            self._feed(sv.Tick())
            self._process()
            if self._extensions:
                self._notify_extensions("on_tick", self._clock())

    def _drain_commands(self) -> None:
        while self._commands:
            self._feed(self._commands.popleft())

    def _feed(self, event: sv.Event) -> None:
        self._events.append(event)

    def _process(self) -> None:
        """Apply queued events to the supervisor and perform the resulting actions."""
        assert self._supervisor is not None
        while self._events:
            event = self._events.popleft()
            for action in self._supervisor.on_event(event, self._clock()):
                self._perform(action)

    # -- inputs ----------------------------------------------------------------------

    def _on_signals(self, signums: list[int]) -> None:
        assert self._supervisor is not None
        # A burst of one signal is one signal (the kernel coalesces them too); the order
        # of first arrival is kept.
        for signum in dict.fromkeys(signums):
            if signum == _signals.WAKE:
                continue
            if signum == signal.SIGCHLD:
                self._reap()
            elif signum == signal.SIGTERM:
                if self._supervisor.phase in (sv.Phase.IDLE, sv.Phase.RUNNING):
                    # The timeout may have changed since run() (oslo_config_glue reload).
                    self._supervisor.graceful_shutdown_timeout = self._graceful_shutdown_timeout
                    LOG.info("Caught SIGTERM signal, graceful exiting of master process")
                    self._feed(sv.StopRequested())
            elif signum == signal.SIGINT:
                if not self._fast_exit:
                    self._fast_exit = True
                    LOG.info("Caught SIGINT signal, instantaneous exiting")
                    self._feed(sv.FastExitRequested())
            elif signum == signal.SIGALRM:
                self._feed(sv.StopTimedOut())
            elif signum == signal.SIGHUP:
                with self._lock:
                    self._forktimes.clear()
                self._feed(sv.ReloadRequested())
            elif any(signum in ext.signals for ext in self._extensions):
                self._notify_extensions("on_signal", signum)
            else:
                LOG.debug("unhandled signal %s", signum)
            self._process()

    def _reap(self) -> None:
        assert self._supervisor is not None
        forked = [pid for pid in self._supervisor.live_pids() if pid not in self._mp_procs]
        for pid, code in _processes.reap(forked):
            self._child_exited(pid, code)

    def _reap_sentinels(self, pids: list[int]) -> None:
        for pid in pids:
            proc = self._mp_procs[pid]
            proc.join(0)
            if proc.exitcode is not None:
                del self._mp_procs[pid]
                self._child_exited(pid, proc.exitcode)
                proc.close()

    def _child_exited(self, pid: int, code: int) -> None:
        assert self._supervisor is not None
        slot = self._supervisor.slot_of(pid)
        if slot is not None and self._extensions:
            self._notify_extensions("on_exited", *slot, pid, code)
        self._feed(sv.ChildExited(pid, code))

    def _on_messages(self, messages: list[_control.Message]) -> None:
        for message in messages:
            handler = self._control_handlers.get(message.kind)
            if handler is None:
                _utils.LOG.log(_utils.TRACE, "unknown control message %r", message)
                continue
            handler(message.pid, message.payload)

    def _on_health_message(self, pid: int, payload: str) -> None:
        status, _, reason = payload.partition(" ")
        self._feed(sv.HealthReported(pid, status == "ok", reason))

    def _on_notify_message(self, pid: int, payload: str) -> None:
        assert self._supervisor is not None
        if self._supervisor.slot_of(pid) is None or self._notifier is None:
            return
        fields = _systemd.unescape_payload(payload)
        allowed = {k: v for k, v in fields.items() if k == "STATUS" or k.startswith("X_")}
        if allowed:
            self._notifier.notify(**allowed)

    # -- actions ---------------------------------------------------------------------

    def _perform(self, action: sv.Action) -> None:
        _utils.LOG.log(_utils.TRACE, "master performs %r", action)
        getattr(self, "_do_" + sv.snake(type(action).__name__))(action)

    def _do_spawn_worker(self, action: sv.SpawnWorker) -> None:
        config = self._worker_config(action.service_id, action.worker_id)
        self._notify_extensions("before_fork", action.service_id, action.worker_id)
        try:
            pid = self._spawn(action.service_id, config)
        except OSError as exc:
            self._feed(sv.SpawnFailed(action.service_id, action.worker_id, str(exc)))
        else:
            self._notify_extensions("on_spawned", action.service_id, action.worker_id, pid)
            self._feed(sv.ChildSpawned(action.service_id, action.worker_id, pid))

    def _worker_config(
        self, service_id: ServiceId, worker_id: WorkerId
    ) -> _service_worker.WorkerConfig:
        service = self._services[service_id]
        return _service_worker.WorkerConfig(
            service_id=service_id,
            worker_id=worker_id,
            factory=service.factory,
            args=service.args,
            kwargs=service.kwargs,
            graceful_shutdown_timeout=self._graceful_shutdown_timeout,
            on_new_worker=list(self._hooks["new_worker"]),
            master_pid=os.getpid(),
        )

    def _spawn(self, service_id: ServiceId, config: _service_worker.WorkerConfig) -> int:
        """Start a worker through the service's spawner, if it has one."""
        spawner = self._services[service_id].spawner
        if spawner is None:
            return self._start_worker(config)
        if not self._subreaper:  # the spawner's workers are reparented to us
            _processes.set_child_subreaper()
            self._subreaper = True
        return spawner.spawn(config, self._child_setup())

    def _start_worker(self, config: _service_worker.WorkerConfig) -> int:
        ctx = self.mp_context
        if ctx is None or ctx is self._default_mp_context or ctx.get_start_method() == "fork":
            return self._fork(config)
        return self._start_through_context(ctx, config)

    def _child_setup(self) -> ChildSetup:
        """The master's fds and signals as a worker's ``forked_main`` needs them, now."""
        assert self._signals is not None
        assert self._control is not None
        assert self._seatbelt is not None
        ext_reads, ext_writes = self._extension_fds()
        master_fds = (
            self._signals.read_fd,
            self._signals.write_fd,
            self._control.read_fd,
            self._seatbelt.write_fd,
            *ext_reads,
            *ext_writes,
        )
        return ChildSetup(
            self._master_signals(), master_fds, self._seatbelt.read_fd, self._control.write_fd
        )

    def _fork(self, config: _service_worker.WorkerConfig) -> int:
        setup = self._child_setup()
        with _signals.blocked(_signals.all_signals()) as mask:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns from here
                _service_worker.forked_main(
                    config,
                    master_signals=setup.master_signals,
                    mask=mask,
                    master_fds=setup.master_fds,
                    seatbelt_fd=setup.seatbelt_fd,
                    control_fd=setup.control_fd,
                )
        return pid

    def _start_through_context(self, ctx: Any, config: _service_worker.WorkerConfig) -> int:
        from multiprocessing.connection import Connection  # noqa: PLC0415 - rare path

        assert self._control is not None
        assert self._seatbelt is not None
        seatbelt = Connection(os.dup(self._seatbelt.read_fd), writable=False)
        control = Connection(os.dup(self._control.write_fd), readable=False)
        try:
            proc = ctx.Process(
                target=_service_worker.spawned_main, args=(config, seatbelt, control)
            )
            proc.start()
        finally:
            seatbelt.close()
            control.close()
        self._mp_procs[proc.pid] = proc
        return int(proc.pid)

    def _do_stop_worker(self, action: sv.StopWorker) -> None:
        _processes.send_signal([action.pid], signal.SIGTERM)

    def _do_stop_workers(self, action: sv.StopWorkers) -> None:
        LOG.debug("Killing services with signal SIGTERM")
        _processes.send_signal(action.pids, signal.SIGTERM)
        LOG.debug("Waiting services to terminate")

    def _do_interrupt_workers(self, action: sv.InterruptWorkers) -> None:
        _processes.send_signal(action.pids, signal.SIGINT)

    def _do_kill_workers(self, action: sv.KillWorkers) -> None:
        _processes.send_signal(action.pids, signal.SIGKILL)
        self._reap_all_blocking(action.pids)

    def _do_reload_workers(self, action: sv.ReloadWorkers) -> None:
        _processes.send_signal(action.pids, signal.SIGHUP)

    def _do_run_hooks(self, action: sv.RunHooks) -> None:
        _utils.run_hooks(action.kind, list(self._hooks[action.kind]))

    def _do_report_exit(self, action: sv.ReportExit) -> None:
        _utils.run_hooks(
            "dead_worker",
            list(self._hooks["dead_worker"]),
            action.service_id,
            action.worker_id,
            action.exit_code,
        )
        if action.exit_code < 0:
            name = _utils.signal_to_name(-action.exit_code)
            LOG.info("Child %i killed by signal %s", action.pid, name)
        else:
            LOG.info("Child %i exited with status %d", action.pid, action.exit_code)

    def _do_prepare_reload(self, action: sv.PrepareReload) -> None:
        service_id = action.service_id
        spawner = self._services[service_id].spawner
        assert spawner is not None

        def answer(error: str) -> None:
            self._feed(sv.ReloadPrepared(service_id, error))

        try:
            spawner.prepare_reload(self._child_setup(), answer)
        except Exception as exc:  # a spawner bug must not take the master down
            LOG.exception("Spawner %r failed in prepare_reload()", spawner)
            answer(f"the spawner failed: {exc}")

    def _do_replace_step(self, action: sv.ReplaceStep) -> None:
        name = self._service_name(action.service_id)
        why = f" ({action.reason})" if action.reason else ""
        if action.kind == "aborted" and action.worker_id is None:
            REPLACE_LOG.error(
                "Replacement of %s workers aborted: %s; every worker keeps serving",
                name,
                action.reason,
            )
        elif action.kind == "replacing":
            assert action.worker_id is not None
            self._notify_extensions(
                "on_replacing", action.service_id, action.worker_id, action.reason
            )
            REPLACE_LOG.info(
                "Replacing %s worker %s (pid %s)%s", name, action.worker_id, action.old_pid, why
            )
        elif action.kind == "replaced":
            self._notify_extensions(
                "on_replaced", action.service_id, action.worker_id, action.old_pid
            )
            REPLACE_LOG.info(
                "%s worker %s replaced: pid %s is serving, pid %s stops",
                name,
                action.worker_id,
                action.new_pid,
                action.old_pid,
            )
        elif action.kind == "aborted":
            self._notify_extensions(
                "on_replace_aborted", action.service_id, action.worker_id, action.old_pid
            )
            REPLACE_LOG.error(
                "Replacement of %s worker %s aborted: %s; pid %s keeps serving and the "
                "other workers are left as they are",
                name,
                action.worker_id,
                action.reason,
                action.old_pid,
            )
        elif action.reason == "aborted":
            REPLACE_LOG.info("Reload of %s ended without replacing every worker", name)
        else:
            REPLACE_LOG.info("Every %s worker was replaced", name)

    def _do_throttled(self, action: sv.Throttled) -> None:
        LOG.info("Forking too fast, sleeping")

    def _do_retry_spawn(self, action: sv.RetrySpawn) -> None:
        LOG.error(
            "Cannot start worker %d of service %s: %s; retrying in %.1f s",
            action.worker_id,
            self._service_name(action.service_id),
            action.error,
            action.delay,
        )

    def _do_notify(self, action: sv.Notify) -> None:
        notifier = self._notifier
        if notifier is None or not notifier.enabled:
            return
        status = action.status or None
        if action.kind == "ready":
            notifier.ready(status)
        elif action.kind == "reloading":
            notifier.reloading(status)
        elif action.kind == "stopping":
            notifier.stopping(status)
        elif action.kind == "status" and action.status:
            notifier.status(action.status)
        elif action.kind == "watchdog":
            notifier.watchdog()
        elif action.kind == "extend":
            notifier.extend_timeout(2 * sv.EXTEND_INTERVAL)

    def _do_gave_up(self, action: sv.GaveUp) -> None:
        LOG.error(
            "Service %s restarted more than %d times in %s s, giving up: stopping the manager",
            self._service_name(action.service_id),
            action.max_restarts,
            action.period,
        )

    def _do_graceful_timeout(self, action: sv.GracefulTimeout) -> NoReturn:
        LOG.info("Graceful shutdown timeout exceeded, instantaneous exiting of master process")
        _processes.send_signal(action.pids, signal.SIGKILL)
        self._reap_all_blocking(action.pids)
        self._exit_now(1)

    def _do_exit(self, action: sv.Exit) -> NoReturn:
        if self._fast_exit:
            self._exit_now(action.code)
        LOG.debug("Shutdown finish")
        sys.exit(action.code)

    # -- helpers ---------------------------------------------------------------------

    def _service_name(self, service_id: ServiceId) -> str:
        factory = self._services[service_id].factory
        return str(getattr(factory, "name", None) or getattr(factory, "__name__", factory))

    def _reap_all_blocking(self, pids: tuple[int, ...]) -> None:
        for pid in pids:
            proc = self._mp_procs.pop(pid, None)
            if proc is not None:
                proc.join()
            else:
                _processes.reap_blocking([pid])

    def _exit_now(self, code: int) -> NoReturn:
        self._teardown()
        with contextlib.suppress(Exception):
            logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


#: Ours, as defined: anything else found under that name was patched in by the program.
_OWN_SLOWDOWN = ServiceManager._slowdown_respawn_if_needed


def _give_up_policy(max_restarts: int | None, period: float) -> GiveUpPolicy | None:
    return None if max_restarts is None else GiveUpPolicy(max_restarts, period)
