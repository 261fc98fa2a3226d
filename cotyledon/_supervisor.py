"""PURE supervision state machine of the master: events in, actions out.

Job: decide. Given what happened (a child exited, a signal arrived, a deadline passed, the
configuration changed) and the current monotonic time, say what the master must do now
(fork this slot, SIGTERM that pid, run the reload hooks, tell systemd READY=1, exit...).
The driver (:mod:`cotyledon._service_manager`) performs the actions, feeds back their
outcome (``ChildSpawned``/``SpawnFailed``) and writes the log lines.

The model: each service has ``workers`` slots, one per worker id. A slot holds at most one
*current* process; processes being stopped (scale-down, or the old worker of a
replacement) are *retiring* and live beside the slot's replacement. A service added with
``reload="replace"`` takes SIGHUP as a progressive replacement of its workers (see
:mod:`cotyledon._replacement`); any worker may ask to be replaced (recycling). Restart
decisions use the service's :class:`~cotyledon._restart_policy.RestartBudget`; a
throttled or failed fork is a deadline, never a sleep.

Must not: fork, kill, read a clock, log or import ``os``/``signal``/``time``/``logging``.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Hashable

from cotyledon._deadlines import Deadlines
from cotyledon._record import FrozenRecord, Record
from cotyledon._replacement import Replacement, ReplacePolicy
from cotyledon._restart_policy import GiveUpPolicy, RestartBudget
from cotyledon.types import ServiceId, WorkerId

Slot = tuple[ServiceId, WorkerId]

#: Exit status of the master when a service exhausted its give-up policy.
EXIT_GAVE_UP = 3
#: How long workers get to die of SIGINT before the master SIGKILLs them and exits.
FAST_EXIT_GRACE = 1.0
#: Backoff after a failed fork: first retry delay and cap, in seconds.
SPAWN_RETRY_FIRST = 0.1
SPAWN_RETRY_MAX = 5.0
#: While stopping, ask systemd for more time this often (EXTEND_TIMEOUT_USEC).
EXTEND_INTERVAL = 5.0


class Phase(enum.Enum):
    """Lifecycle of the master."""

    IDLE = "idle"  # built; run() not called yet
    RUNNING = "running"
    STOPPING = "stopping"  # graceful shutdown: SIGTERM sent, waiting for the workers
    EXITING = "exiting"  # fast exit (SIGINT): SIGINT sent, waiting a little
    FINISHED = "finished"


# ---------------------------------------------------------------------------- events


class Started(FrozenRecord):
    """run() began: fork the initial workers."""

    __slots__ = ()


class ServiceAdded(FrozenRecord):
    __slots__ = ("give_up", "name", "prepare", "reload", "replace", "service_id", "workers")

    service_id: ServiceId
    workers: int
    give_up: GiveUpPolicy | None
    #: Shown in the systemd STATUS line (default: none, only the totals are shown).
    name: str
    #: SIGHUP: "signal" forwards it to the workers, "replace" replaces them one by one.
    reload: str
    replace: ReplacePolicy
    #: With ``reload="replace"``: a SIGHUP first asks the service's spawner to prepare
    #: (:class:`PrepareReload`), and the replacement starts once it answers
    #: (:class:`ReloadPrepared`); a failed preparation aborts the reload.
    prepare: bool

    def __init__(
        self,
        service_id: ServiceId,
        workers: int,
        give_up: GiveUpPolicy | None = None,
        *,
        name: str = "",
        reload: str = "signal",
        replace: ReplacePolicy | None = None,
        prepare: bool = False,
    ) -> None:
        self.service_id = service_id
        self.workers = workers
        self.give_up = give_up
        self.name = name
        self.reload = reload
        self.replace = ReplacePolicy() if replace is None else replace
        self.prepare = prepare


class ReplaceRequested(FrozenRecord):
    """Replace these workers of a service progressively (all of them when None)."""

    __slots__ = ("reason", "service_id", "worker_ids")

    service_id: ServiceId
    worker_ids: tuple[WorkerId, ...] | None
    reason: str

    def __init__(
        self,
        service_id: ServiceId,
        worker_ids: tuple[WorkerId, ...] | None = None,
        reason: str = "replace",
    ) -> None:
        self.service_id = service_id
        self.worker_ids = worker_ids
        self.reason = reason


class ReplacementAsked(FrozenRecord):
    """The worker ``pid`` asked to be replaced (it reached a recycling limit)."""

    __slots__ = ("pid", "reason")

    pid: int
    reason: str

    def __init__(self, pid: int, reason: str = "") -> None:
        self.pid = pid
        self.reason = reason


class Reconfigured(FrozenRecord):
    __slots__ = ("service_id", "workers")

    service_id: ServiceId
    workers: int

    def __init__(self, service_id: ServiceId, workers: int) -> None:
        self.service_id = service_id
        self.workers = workers


class ChildSpawned(FrozenRecord):
    """The driver forked ``pid`` for a slot (outcome of :class:`SpawnWorker`)."""

    __slots__ = ("pid", "service_id", "worker_id")

    service_id: ServiceId
    worker_id: WorkerId
    pid: int

    def __init__(self, service_id: ServiceId, worker_id: WorkerId, pid: int) -> None:
        self.service_id = service_id
        self.worker_id = worker_id
        self.pid = pid


class SpawnFailed(FrozenRecord):
    """The driver could not fork for a slot (outcome of :class:`SpawnWorker`)."""

    __slots__ = ("error", "service_id", "worker_id")

    service_id: ServiceId
    worker_id: WorkerId
    error: str

    def __init__(self, service_id: ServiceId, worker_id: WorkerId, error: str) -> None:
        self.service_id = service_id
        self.worker_id = worker_id
        self.error = error


class WorkerStarted(FrozenRecord):
    """The worker ``pid`` entered run() (reported over the control channel)."""

    __slots__ = ("pid",)

    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class WorkerReloaded(FrozenRecord):
    """The worker ``pid`` finished its own ``reload()`` and keeps running."""

    __slots__ = ("pid",)

    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class HealthReported(FrozenRecord):
    __slots__ = ("ok", "pid", "reason")

    pid: int
    ok: bool
    reason: str

    def __init__(self, pid: int, ok: bool, reason: str = "") -> None:
        self.pid = pid
        self.ok = ok
        self.reason = reason


class ChildExited(FrozenRecord):
    """A child was reaped; ``exit_code`` is negative when killed by that signal."""

    __slots__ = ("exit_code", "pid")

    pid: int
    exit_code: int

    def __init__(self, pid: int, exit_code: int) -> None:
        self.pid = pid
        self.exit_code = exit_code


class StopRequested(FrozenRecord):
    """SIGTERM (or shutdown()): stop gracefully. A master extension that gives up (the
    WSGI server when no worker can load its app) sets ``code`` and says why in ``reason``
    (sent in sd-notify ``STATUS=``)."""

    __slots__ = ("code", "reason")

    code: int
    reason: str

    def __init__(self, code: int = 0, reason: str = "") -> None:
        self.code = code
        self.reason = reason


class StopTimedOut(FrozenRecord):
    """SIGALRM reached the master: end the graceful stop now."""

    __slots__ = ()


class FastExitRequested(FrozenRecord):
    """SIGINT: interrupt every worker and exit at once."""

    __slots__ = ()


class ReloadRequested(FrozenRecord):
    """SIGHUP."""

    __slots__ = ()


class ReloadPrepared(FrozenRecord):
    """The spawner of a service answered :class:`PrepareReload`: ready when ``error`` is
    empty (the replacement starts), else the reload of that service is aborted."""

    __slots__ = ("error", "service_id")

    service_id: ServiceId
    error: str

    def __init__(self, service_id: ServiceId, error: str = "") -> None:
        self.service_id = service_id
        self.error = error


class Tick(FrozenRecord):
    """Time passed: handle the deadlines that are due."""

    __slots__ = ()


Event = (
    Started
    | ServiceAdded
    | Reconfigured
    | ChildSpawned
    | SpawnFailed
    | WorkerStarted
    | WorkerReloaded
    | HealthReported
    | ChildExited
    | StopRequested
    | StopTimedOut
    | FastExitRequested
    | ReloadRequested
    | ReplaceRequested
    | ReplacementAsked
    | ReloadPrepared
    | Tick
)

# --------------------------------------------------------------------------- actions


class SpawnWorker(FrozenRecord):
    """Fork a worker for this slot, then feed back ChildSpawned or SpawnFailed."""

    __slots__ = ("service_id", "worker_id")

    service_id: ServiceId
    worker_id: WorkerId

    def __init__(self, service_id: ServiceId, worker_id: WorkerId) -> None:
        self.service_id = service_id
        self.worker_id = worker_id


class StopWorker(FrozenRecord):
    """SIGTERM one surplus worker (scale-down); it is not respawned."""

    __slots__ = ("pid",)

    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


class StopWorkers(FrozenRecord):
    """Graceful shutdown: SIGTERM every worker (the compat 'Killing services' lines)."""

    __slots__ = ("pids",)

    pids: tuple[int, ...]

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids


class InterruptWorkers(FrozenRecord):
    """Fast exit: SIGINT every worker."""

    __slots__ = ("pids",)

    pids: tuple[int, ...]

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids


class KillWorkers(FrozenRecord):
    """SIGKILL what is left."""

    __slots__ = ("pids",)

    pids: tuple[int, ...]

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids


class ReloadWorkers(FrozenRecord):
    """Forward SIGHUP to these workers."""

    __slots__ = ("pids",)

    pids: tuple[int, ...]

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids


class RunHooks(FrozenRecord):
    """Run the master-side hooks of ``kind`` ("terminate" or "reload")."""

    __slots__ = ("kind",)

    kind: str

    def __init__(self, kind: str) -> None:
        self.kind = kind


class ReportExit(FrozenRecord):
    """A worker died while running: run on_dead_worker hooks and log its status."""

    __slots__ = ("exit_code", "pid", "service_id", "worker_id")

    service_id: ServiceId
    worker_id: WorkerId
    pid: int
    exit_code: int

    def __init__(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        self.service_id = service_id
        self.worker_id = worker_id
        self.pid = pid
        self.exit_code = exit_code


class Throttled(FrozenRecord):
    """A service forks too fast: its next fork waits until ``until``."""

    __slots__ = ("service_id", "until")

    service_id: ServiceId
    until: float

    def __init__(self, service_id: ServiceId, until: float) -> None:
        self.service_id = service_id
        self.until = until


class RetrySpawn(FrozenRecord):
    """A fork failed; it is retried after ``delay`` seconds."""

    __slots__ = ("delay", "error", "service_id", "worker_id")

    service_id: ServiceId
    worker_id: WorkerId
    delay: float
    error: str

    def __init__(
        self, service_id: ServiceId, worker_id: WorkerId, delay: float, error: str
    ) -> None:
        self.service_id = service_id
        self.worker_id = worker_id
        self.delay = delay
        self.error = error


class Notify(FrozenRecord):
    """Tell systemd: kind is ready, reloading, stopping, watchdog or extend."""

    __slots__ = ("kind", "status")

    kind: str
    status: str

    def __init__(self, kind: str, status: str = "") -> None:
        self.kind = kind
        self.status = status


class GaveUp(FrozenRecord):
    """A service exhausted its give-up policy: the manager stops with EXIT_GAVE_UP."""

    __slots__ = ("max_restarts", "period", "service_id")

    service_id: ServiceId
    max_restarts: int
    period: float

    def __init__(self, service_id: ServiceId, max_restarts: int, period: float) -> None:
        self.service_id = service_id
        self.max_restarts = max_restarts
        self.period = period


class GracefulTimeout(FrozenRecord):
    """The graceful stop took too long: SIGKILL ``pids`` and exit 1 at once."""

    __slots__ = ("pids",)

    pids: tuple[int, ...]

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids


class Exit(FrozenRecord):
    """Every worker is gone: the master exits with ``code``."""

    __slots__ = ("code",)

    code: int

    def __init__(self, code: int) -> None:
        self.code = code


class PrepareReload(FrozenRecord):
    """Ask the spawner of a service to get ready for a reload (load the new code); it
    answers with :class:`ReloadPrepared`."""

    __slots__ = ("service_id",)

    service_id: ServiceId

    def __init__(self, service_id: ServiceId) -> None:
        self.service_id = service_id


class ReplaceStep(FrozenRecord):
    """Log a step of a worker replacement.

    ``kind``: "replacing" (the slot gets a new process, ``old_pid`` keeps serving),
    "replaced" (``new_pid`` entered run(); ``old_pid`` was told to stop), "aborted"
    (``new_pid`` failed, ``old_pid`` keeps its slot; ``reason`` says how; ``worker_id``
    None: the reload's preparation failed and no worker was replaced) or "done"
    (nothing left to replace; ``reason`` "aborted" when a replacement of this reload was
    aborted, so not every worker was replaced).
    """

    __slots__ = ("kind", "new_pid", "old_pid", "reason", "service_id", "worker_id")

    kind: str
    service_id: ServiceId
    worker_id: WorkerId | None
    old_pid: int | None
    new_pid: int | None
    reason: str

    def __init__(  # noqa: PLR0917 - positional, as the dataclass it replaced
        self,
        kind: str,
        service_id: ServiceId,
        worker_id: WorkerId | None = None,
        old_pid: int | None = None,
        new_pid: int | None = None,
        reason: str = "",
    ) -> None:
        self.kind = kind
        self.service_id = service_id
        self.worker_id = worker_id
        self.old_pid = old_pid
        self.new_pid = new_pid
        self.reason = reason


Action = (
    SpawnWorker
    | StopWorker
    | StopWorkers
    | InterruptWorkers
    | KillWorkers
    | ReloadWorkers
    | RunHooks
    | ReportExit
    | Throttled
    | RetrySpawn
    | Notify
    | GaveUp
    | GracefulTimeout
    | Exit
    | ReplaceStep
    | PrepareReload
)

# ----------------------------------------------------------------------------- state


class _Service(Record):
    __slots__ = (
        "budget",
        "name",
        "prepare",
        "preparing",
        "reload",
        "replacement",
        "restarting",
        "service_id",
        "spawn_failures",
        "workers",
    )

    service_id: ServiceId
    workers: int
    budget: RestartBudget
    name: str
    spawn_failures: int
    #: Worker ids whose worker died and awaits its replacement (a restart).
    restarting: set[WorkerId]
    reload: str
    replacement: Replacement
    #: A reload first asks the spawner to prepare; ``preparing`` until it answers.
    prepare: bool
    preparing: bool

    def __init__(
        self,
        service_id: ServiceId,
        workers: int,
        budget: RestartBudget,
        *,
        name: str = "",
        reload: str = "signal",
        replacement: Replacement | None = None,
        prepare: bool = False,
    ) -> None:
        self.service_id = service_id
        self.workers = workers
        self.budget = budget
        self.name = name
        self.spawn_failures = 0
        self.restarting = set()
        self.reload = reload
        self.replacement = Replacement(ReplacePolicy()) if replacement is None else replacement
        self.prepare = prepare
        self.preparing = False


class _Proc(Record):
    __slots__ = ("healthy", "pid", "retiring", "slot", "started")

    pid: int
    slot: Slot
    started: bool
    retiring: bool
    healthy: bool

    def __init__(
        self,
        pid: int,
        slot: Slot,
        started: bool = False,
        retiring: bool = False,
        healthy: bool = True,
    ) -> None:
        self.pid = pid
        self.slot = slot
        self.started = started
        self.retiring = retiring
        self.healthy = healthy


@functools.cache
def snake(name: str) -> str:
    """``ChildExited`` -> ``child_exited`` (event and action classes to method names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


RespawnGate = Callable[[ServiceId, float], float]


class Supervisor:
    """The master's decisions. Feed it with :meth:`on_event`; perform what it returns.

    :param graceful_shutdown_timeout: seconds for the whole graceful stop (0: no limit).
    :param watchdog_interval: seconds between ``Notify("watchdog")`` (None: no watchdog).
    :param extend_interval: while stopping, seconds between ``Notify("extend")`` (None:
        never).
    :param respawn_gate: ``(service_id, now) -> delay`` consulted before every fork; the
        default is the service's restart budget (:meth:`respawn_delay`).
    """

    def __init__(
        self,
        graceful_shutdown_timeout: float = 60,
        watchdog_interval: float | None = None,
        extend_interval: float | None = None,
        respawn_gate: RespawnGate | None = None,
    ) -> None:
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.watchdog_interval = watchdog_interval
        self.extend_interval = extend_interval
        self.respawn_gate: RespawnGate = respawn_gate or self.respawn_delay
        self.phase = Phase.IDLE
        self.deadlines = Deadlines()
        self._services: dict[ServiceId, _Service] = {}
        self._procs: dict[int, _Proc] = {}
        self._slots: dict[Slot, int] = {}
        self._spawning: set[Slot] = set()
        self._exit_code = 0
        self._ready_sent = False
        self._reloading: set[int] | None = None

    # -- queries ---------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.phase is Phase.FINISHED

    def live_pids(self) -> tuple[int, ...]:
        """Every process we forked and have not reaped, in fork order."""
        return tuple(self._procs)

    def slot_of(self, pid: int) -> Slot | None:
        proc = self._procs.get(pid)
        return proc.slot if proc else None

    def current_pids(self, service_id: ServiceId) -> dict[WorkerId, int]:
        """Worker id -> pid of the slots of a service that hold a process."""
        return {wid: pid for (sid, wid), pid in self._slots.items() if sid == service_id}

    def configured_workers(self) -> int:
        return sum(max(svc.workers, 0) for svc in self._services.values())

    def started_workers(self) -> int:
        return sum(1 for pid in self._slots.values() if self._procs[pid].started)

    def healthy(self) -> bool:
        return all(proc.healthy for proc in self._procs.values())

    def status_line(self) -> str:
        """``"3/4 workers running (Collector 2/2, web 1/2)"``: totals, then per service."""
        configured = self.configured_workers()
        noun = "worker" if configured == 1 else "workers"
        line = f"{self.started_workers()}/{configured} {noun} running"
        parts = [
            f"{svc.name} {self._started_of(svc.service_id)}/{max(svc.workers, 0)}"
            for svc in self._services.values()
            if svc.name
        ]
        return f"{line} ({', '.join(parts)})" if parts else line

    def _started_of(self, service_id: ServiceId) -> int:
        return sum(
            1
            for (sid, _), pid in self._slots.items()
            if sid == service_id and self._procs[pid].started
        )

    def respawn_delay(self, service_id: ServiceId, now: float) -> float:
        """Seconds before the service's next fork is allowed by its restart budget."""
        return max(0.0, self._services[service_id].budget.next_fork_at(now) - now)

    def next_timeout(self, now: float) -> float | None:
        return self.deadlines.next_timeout(now)

    # -- events ----------------------------------------------------------------------

    def on_event(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` at monotonic time ``now``; return the actions to perform."""
        handler = getattr(self, "_on_" + snake(type(event).__name__))
        actions: list[Action] = handler(event, now)
        return actions

    def _on_started(self, event: Started, now: float) -> list[Action]:
        if self.phase is not Phase.IDLE:
            return []
        self.phase = Phase.RUNNING
        if self.watchdog_interval:
            self.deadlines.set("watchdog", now + self.watchdog_interval)
        return self._converge(now) + self._maybe_ready()

    def _on_service_added(self, event: ServiceAdded, now: float) -> list[Action]:
        budget = RestartBudget(event.workers, give_up=event.give_up)
        self._services[event.service_id] = _Service(
            event.service_id,
            event.workers,
            budget,
            name=event.name,
            reload=event.reload,
            replacement=Replacement(event.replace),
            prepare=event.prepare and event.reload == "replace",
        )
        return self._converge(now) if self.phase is Phase.RUNNING else []

    def _on_reconfigured(self, event: Reconfigured, now: float) -> list[Action]:
        svc = self._services[event.service_id]
        svc.workers = max(event.workers, 0)
        svc.budget.resize(svc.workers)
        svc.restarting = {wid for wid in svc.restarting if wid < svc.workers}
        self.deadlines.cancel(("spawn", svc.service_id))
        return self._converge(now) if self.phase is Phase.RUNNING else []

    def _on_child_spawned(self, event: ChildSpawned, now: float) -> list[Action]:
        slot = (event.service_id, event.worker_id)
        self._spawning.discard(slot)
        self._procs[event.pid] = _Proc(event.pid, slot)
        self._slots[slot] = event.pid
        self._services[event.service_id].spawn_failures = 0
        if self.phase is not Phase.RUNNING:
            self._procs[event.pid].retiring = True
            return [StopWorker(event.pid)]
        return self._converge(now)

    def _on_spawn_failed(self, event: SpawnFailed, now: float) -> list[Action]:
        self._spawning.discard((event.service_id, event.worker_id))
        svc = self._services[event.service_id]
        svc.spawn_failures += 1
        delay = min(SPAWN_RETRY_FIRST * 2 ** (svc.spawn_failures - 1), SPAWN_RETRY_MAX)
        if self.phase is not Phase.RUNNING:
            return self._maybe_finish()
        self.deadlines.set_earliest(("spawn", event.service_id), now + delay)
        return [RetrySpawn(event.service_id, event.worker_id, delay, event.error)]

    def _on_worker_started(self, event: WorkerStarted, now: float) -> list[Action]:
        proc = self._procs.get(event.pid)
        if proc is None or proc.started:
            return []
        proc.started = True
        return self._replacement_started(proc, now) + self._maybe_ready()

    def _on_worker_reloaded(self, event: WorkerReloaded, now: float) -> list[Action]:
        if self._reloading is not None:
            self._reloading.discard(event.pid)
        return self._maybe_ready()

    def _on_health_reported(self, event: HealthReported, now: float) -> list[Action]:
        proc = self._procs.get(event.pid)
        if proc is not None:
            proc.healthy = event.ok
        return []

    def _on_child_exited(self, event: ChildExited, now: float) -> list[Action]:
        proc = self._procs.pop(event.pid, None)
        if proc is None:
            return []
        if self._reloading is not None:
            self._reloading.discard(event.pid)
        if self.phase is not Phase.RUNNING:
            if self._slots.get(proc.slot) == event.pid:
                del self._slots[proc.slot]
            return self._maybe_finish()
        actions: list[Action] = [ReportExit(*proc.slot, event.pid, event.exit_code)]
        failed = self._replacement_exited(proc, event, now)
        if failed is not None:
            return actions + failed + self._maybe_ready()
        if self._slots.get(proc.slot) == event.pid:
            del self._slots[proc.slot]
        svc = self._services[proc.slot[0]]
        if not proc.retiring and proc.slot[1] < svc.workers:
            svc.restarting.add(proc.slot[1])
            if svc.budget.record_restart(now):
                assert svc.budget.give_up is not None
                policy = svc.budget.give_up
                actions.append(GaveUp(svc.service_id, policy.max_restarts, policy.period))
                why = (
                    f"{svc.name or 'a service'} restarted more than {policy.max_restarts} "
                    f"times in {policy.period:g} s, giving up"
                )
                return actions + self._begin_stop(now, EXIT_GAVE_UP, why)
        return actions + self._advance_replacements(now) + self._maybe_ready()

    def _on_stop_requested(self, event: StopRequested, now: float) -> list[Action]:
        if self.phase not in (Phase.IDLE, Phase.RUNNING):
            return []
        return self._begin_stop(now, event.code, event.reason)

    def _on_stop_timed_out(self, event: StopTimedOut, now: float) -> list[Action]:
        if self.phase is Phase.FINISHED:
            return []
        self.phase = Phase.FINISHED
        self.deadlines.clear()
        return [GracefulTimeout(self.live_pids())]

    def _on_fast_exit_requested(self, event: FastExitRequested, now: float) -> list[Action]:
        if self.phase in (Phase.EXITING, Phase.FINISHED):
            return []
        self.phase = Phase.EXITING
        self._exit_code = 1
        self.deadlines.clear()
        self.deadlines.set("fast", now + FAST_EXIT_GRACE)
        return [InterruptWorkers(self.live_pids()), *self._maybe_finish()]

    def _on_reload_requested(self, event: ReloadRequested, now: float) -> list[Action]:
        if self.phase is not Phase.RUNNING:
            return []
        replaced = set()
        prepare: list[Action] = []
        for svc in self._services.values():
            svc.budget.clear()
            self.deadlines.cancel(("spawn", svc.service_id))
            if svc.reload == "replace":
                replaced.add(svc.service_id)
                svc.replacement.reloading = True
                svc.replacement.aborted = False
                if svc.prepare:  # replaced once the spawner is ready (ReloadPrepared)
                    svc.preparing = True
                    prepare.append(PrepareReload(svc.service_id))
                    continue
                current = sorted(self.current_pids(svc.service_id))
                svc.replacement.request(current, "reload")
        pids = tuple(
            pid
            for pid, proc in self._procs.items()
            if not proc.retiring and proc.slot[0] not in replaced
        )
        self._reloading = set(pids)
        self._ready_sent = False
        return [
            Notify("reloading", "reloading"),
            RunHooks("reload"),
            ReloadWorkers(pids),
            *prepare,
            *self._converge(now),
            *self._advance_replacements(now),
        ]

    def _on_reload_prepared(self, event: ReloadPrepared, now: float) -> list[Action]:
        svc = self._services.get(event.service_id)
        if svc is None or not svc.preparing or self.phase is not Phase.RUNNING:
            return []
        svc.preparing = False
        if event.error:
            svc.replacement.aborted = True
            step = ReplaceStep("aborted", svc.service_id, reason=event.error)
            return [step, *self._end_of_replacement(svc), *self._maybe_ready()]
        current = sorted(self.current_pids(svc.service_id))
        svc.replacement.request(current, "reload")
        return self._advance_replacements(now) + self._maybe_ready()

    def _on_replace_requested(self, event: ReplaceRequested, now: float) -> list[Action]:
        svc = self._services.get(event.service_id)
        if svc is None or self.phase is not Phase.RUNNING:
            return []
        current = self.current_pids(svc.service_id)
        wids = current if event.worker_ids is None else event.worker_ids
        svc.replacement.request([wid for wid in sorted(wids) if wid in current], event.reason)
        return self._advance_replacements(now) + self._maybe_ready()

    def _on_replacement_asked(self, event: ReplacementAsked, now: float) -> list[Action]:
        proc = self._procs.get(event.pid)
        if proc is None or proc.retiring or self._slots.get(proc.slot) != event.pid:
            return []  # already on its way out
        return self._on_replace_requested(
            ReplaceRequested(proc.slot[0], (proc.slot[1],), event.reason or "asked"), now
        )

    def _on_tick(self, event: Tick, now: float) -> list[Action]:
        actions: list[Action] = []
        for name in self.deadlines.pop_due(now):
            actions.extend(self._on_deadline(name, now))
        return actions

    # -- deadlines -------------------------------------------------------------------

    def _on_deadline(self, name: Hashable, now: float) -> list[Action]:
        if name == "graceful":
            return self._on_stop_timed_out(StopTimedOut(), now)
        if name == "fast":
            self.phase = Phase.FINISHED
            self.deadlines.clear()
            return [KillWorkers(self.live_pids()), Exit(self._exit_code)]
        if name == "watchdog":
            assert self.watchdog_interval is not None
            self.deadlines.set("watchdog", now + self.watchdog_interval)
            return [Notify("watchdog")] if self.healthy() else []
        if name == "extend":
            # Ask systemd for more time only while our own graceful deadline is ahead: an
            # unbounded stop (timeout 0) is left to systemd's TimeoutStopSec, and the
            # extension stops once our deadline has passed (SIGKILL is then under way).
            assert self.extend_interval is not None
            graceful = self.deadlines.get("graceful")
            if graceful is None or graceful <= now:
                return []
            if graceful > now + self.extend_interval:
                self.deadlines.set("extend", now + self.extend_interval)
            return [Notify("extend", "stopping")]
        return self._on_service_deadline(name, now)

    def _on_service_deadline(self, name: Hashable, now: float) -> list[Action]:
        if isinstance(name, tuple) and name[0] == "replace":
            return self._replacement_timed_out(ServiceId(name[1]), WorkerId(name[2]), now)
        # ("spawn", service_id): a throttle pause or a fork retry ended.
        return self._converge(now) if self.phase is Phase.RUNNING else []

    # -- helpers ---------------------------------------------------------------------

    def _converge(self, now: float) -> list[Action]:
        """Fork missing slots (budget allowing) and retire surplus ones."""
        actions: list[Action] = []
        for svc in self._services.values():
            actions.extend(self._retire_surplus(svc))
            for wid in range(svc.workers):
                slot = (svc.service_id, WorkerId(wid))
                if slot in self._slots or slot in self._spawning:
                    continue
                if ("spawn", svc.service_id) in self.deadlines:
                    break
                delay = self.respawn_gate(svc.service_id, now)
                if delay > 0:
                    svc.budget.pause_until(now + delay)
                    self.deadlines.set(("spawn", svc.service_id), now + delay)
                    actions.append(Throttled(svc.service_id, now + delay))
                    break
                if slot[1] in svc.restarting:
                    svc.restarting.discard(slot[1])
                    svc.budget.record_fork(now)
                self._spawning.add(slot)
                actions.append(SpawnWorker(*slot))
        return actions

    def _retire_surplus(self, svc: _Service) -> list[Action]:
        # Old workers of replacements beyond the new count: retiring already, still serving.
        outgoing = svc.replacement.forget_from(svc.workers)
        actions: list[Action] = [StopWorker(pid) for pid in outgoing]
        for slot, pid in list(self._slots.items()):
            if slot[0] == svc.service_id and slot[1] >= svc.workers:
                del self._slots[slot]
                self._procs[pid].retiring = True
                actions.append(StopWorker(pid))
        return actions

    def _maybe_ready(self) -> list[Action]:
        """READY=1 once every configured slot holds a started worker (and a reload, if
        one is under way, has been acknowledged by every worker it signalled)."""
        if self.phase is not Phase.RUNNING or self._reloading:
            return []
        if any(svc.replacement.reloading for svc in self._services.values()):
            return [Notify("status", "reloading: " + self.status_line())]
        if self._ready_sent:
            return [Notify("status", self.status_line())]
        if self.started_workers() < self.configured_workers():
            # Before READY too: `systemctl status` shows start-up progress (systemd.md 1.6),
            # and the tail of a reload still reads as one.
            prefix = "reloading: " if self._reloading is not None else ""
            return [Notify("status", prefix + self.status_line())]
        self._ready_sent = True
        self._reloading = None
        return [Notify("ready", self.status_line())]

    def _begin_stop(self, now: float, code: int, reason: str = "") -> list[Action]:
        self.phase = Phase.STOPPING
        self._exit_code = code
        self.deadlines.clear()
        for svc in self._services.values():
            svc.replacement.clear()
            svc.preparing = False
        if self.graceful_shutdown_timeout and self.graceful_shutdown_timeout > 0:
            self.deadlines.set("graceful", now + self.graceful_shutdown_timeout)
            if self.extend_interval:
                self.deadlines.set("extend", now + self.extend_interval)
        actions: list[Action] = [
            Notify("stopping", f"stopping: {reason}" if reason else "stopping"),
            RunHooks("terminate"),
            StopWorkers(self.live_pids()),
        ]
        return actions + self._maybe_finish()

    # -- replacement -----------------------------------------------------------------

    def _advance_replacements(self, now: float) -> list[Action]:
        """Start the replacements the surge limits allow; the old workers keep serving."""
        actions: list[Action] = []
        for svc in self._services.values():
            replacement = svc.replacement
            while (wid := replacement.next_worker()) is not None:
                slot = (svc.service_id, wid)
                old_pid = self._slots.get(slot)
                if old_pid is None:  # nothing there to replace: its next fork is fresh
                    continue
                replacement.begin(wid, old_pid)
                self._procs[old_pid].retiring = True
                del self._slots[slot]
                timeout = replacement.policy.start_timeout
                self.deadlines.set(("replace", svc.service_id, wid), now + timeout)
                why = replacement.reasons.get(wid, "")
                actions.append(ReplaceStep("replacing", svc.service_id, wid, old_pid, None, why))
            actions.extend(self._end_of_replacement(svc))
        return actions + self._converge(now)

    def _end_of_replacement(self, svc: _Service) -> list[Action]:
        """A reload's replacement is complete: say so once (READY follows)."""
        if svc.replacement.active or svc.preparing or not svc.replacement.reloading:
            return []
        svc.replacement.reloading = False
        reason = "aborted" if svc.replacement.aborted else ""
        svc.replacement.aborted = False
        return [ReplaceStep("done", svc.service_id, reason=reason)]

    def _replacement_started(self, proc: _Proc, now: float) -> list[Action]:
        service_id, wid = proc.slot
        svc = self._services.get(service_id)
        if svc is None or wid not in svc.replacement.outgoing:
            return []
        if self._slots.get(proc.slot) != proc.pid:
            return []
        old_pid, reason = svc.replacement.finish(wid)
        self.deadlines.cancel(("replace", service_id, wid))
        step = ReplaceStep("replaced", service_id, wid, old_pid, proc.pid, reason)
        return [step, StopWorker(old_pid), *self._advance_replacements(now)]

    def _replacement_exited(
        self, proc: _Proc, event: ChildExited, now: float
    ) -> list[Action] | None:
        """A process of a replacement died: its old worker (gone: nothing to do), or the
        new one before it started (abort; returns the actions). None: not ours."""
        service_id, wid = proc.slot
        replacement = self._services[service_id].replacement
        if replacement.old_pid_exited(event.pid) is not None:
            # The slot already has its new process, now an ordinary worker.
            self.deadlines.cancel(("replace", service_id, wid))
            return None
        new_one = wid in replacement.outgoing and self._slots.get(proc.slot) == event.pid
        if not new_one or proc.started:
            return None
        how = f"the new worker exited with {event.exit_code} before it started"
        return self._abort_replacement(service_id, wid, event.pid, how, now)

    def _replacement_timed_out(
        self, service_id: ServiceId, wid: WorkerId, now: float
    ) -> list[Action]:
        svc = self._services.get(service_id)
        if svc is None or wid not in svc.replacement.outgoing or self.phase is not Phase.RUNNING:
            return []
        new_pid = self._slots.get((service_id, wid))
        how = f"the new worker did not start within {svc.replacement.policy.start_timeout:g}s"
        actions = self._abort_replacement(service_id, wid, new_pid, how, now)
        if new_pid is not None:
            self._procs[new_pid].retiring = True
            actions.insert(0, StopWorker(new_pid))
        return actions + self._maybe_ready()

    def _abort_replacement(
        self, service_id: ServiceId, wid: WorkerId, new_pid: int | None, how: str, now: float
    ) -> list[Action]:
        """The old worker takes its slot back; nothing more is replaced this time."""
        svc = self._services[service_id]
        slot = (service_id, wid)
        self.deadlines.cancel(("replace", service_id, wid))
        old_pid = svc.replacement.abort(wid)
        self._slots.pop(slot, None)
        if old_pid is not None and old_pid in self._procs:
            self._procs[old_pid].retiring = False
            self._slots[slot] = old_pid
        step = ReplaceStep("aborted", service_id, wid, old_pid, new_pid, how)
        return [step, *self._end_of_replacement(svc), *self._converge(now)]

    def _maybe_finish(self) -> list[Action]:
        if self._procs or self._spawning:
            return []
        if self.phase is Phase.STOPPING or self.phase is Phase.EXITING:
            self.phase = Phase.FINISHED
            self.deadlines.clear()
            return [Exit(self._exit_code)]
        return []
