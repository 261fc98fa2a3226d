"""Progressive, readiness-gated cycling of worker slots (PURE state machine).

Job: decide, event by event, how to replace the workers of N slots so that capacity never
drops: for each slot a replacement is started, and only once it reports ready (it is
accepting) is the old worker retired (told to stop accepting and drain); an old worker
still there at its drain deadline is killed. The same machine serves SIGHUP (every slot),
``--reload`` and per-worker recycling (one slot).

Rules:

* ``max_surge`` bounds the replacements booting at once (extra processes above the
  configured count while the old ones still serve).
* ``max_unavailable`` bounds the slots "in transition" at once: a replacement booting or an
  old worker draining. Capacity (accepting workers) never drops below the configured count
  because of a rollout; this bound caps how many workers are changed over, and so the
  memory of old and new side by side.
* A replacement that exits, or is not ready within ``start_timeout``, aborts the rollout:
  booting replacements are killed, no further old worker is retired, the old workers keep
  serving, and :class:`AbortRollout` says why (the driver logs it).
* A request arriving during a rollout is coalesced: however many arrive, exactly one more
  rollout runs after the current one ends (covering the union of the slots asked for). A
  single-slot request for a slot the running rollout will replace anyway is dropped.

Must not: read clocks, fork, kill or log. Times come in with each event; the driver
performs the actions, feeds the results back as events and asks :meth:`Rollout.next_deadline`
how long its event loop may sleep. The driver must report ``WorkerStarted`` right after it
forks a replacement (so an aborted replacement can be killed) and ``WorkerExited`` for
every reaped worker of a slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutConfig:
    """How a rollout proceeds.

    :param max_surge: replacements booting at once (``--max-surge``), >= 1.
    :param max_unavailable: slots in transition at once (``--max-unavailable``), >= 1 and
        >= ``max_surge`` (a larger value lets old workers drain while the next
        replacements boot).
    :param start_timeout: seconds a replacement has to report ready (``--start-timeout``).
    :param drain_timeout: seconds a retired worker has to finish its in-flight requests
        before it is killed (``--graceful-timeout``, Spawning's deadman).
    """

    max_surge: int = 1
    max_unavailable: int = 1
    start_timeout: float = 60.0
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_surge", "max_unavailable"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"'{name}' must be an int >= 1, not: {value!r} ({type(value).__name__})"
                raise ValueError(msg)
        if self.max_unavailable < self.max_surge:
            msg = (
                f"'max_unavailable' ({self.max_unavailable}) must be >= 'max_surge' "
                f"({self.max_surge}): a booting replacement counts as a slot in transition"
            )
            raise ValueError(msg)
        for name in ("start_timeout", "drain_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                msg = f"'{name}' must be a number > 0, not: {value!r} ({type(value).__name__})"
                raise ValueError(msg)


# -- events (past tense) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutRequested:
    """Cycle workers: ``slots=None`` means every slot (SIGHUP, reload)."""

    reason: str
    slots: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    """The driver forked a worker for ``slot`` (after a :class:`StartReplacement`)."""

    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """The worker ``pid`` of ``slot`` is accepting connections."""

    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """The worker ``pid`` of ``slot`` was reaped."""

    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class SlotRemoved:
    """The worker count went down (SIGTTOU): ``slot`` is no longer served or replaced.

    The driver retires the slot's worker itself; its exit is still reported.
    """

    slot: int


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The time the driver was told to wake up at (or later) has come."""

    now: float


Event = (
    RolloutRequested | WorkerStarted | WorkerReady | WorkerExited | SlotRemoved | DeadlineReached
)

# -- actions (imperative) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutStarted:
    """A rollout begins (the driver logs it, sends RELOADING=1 for a full one)."""

    generation: int
    reason: str
    slots: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StartReplacement:
    """Fork a new worker for ``slot``, of ``generation``; report WorkerStarted/Ready."""

    slot: int
    generation: int


@dataclass(frozen=True, slots=True)
class RetireWorker:
    """Tell ``pid`` to stop accepting and drain (SIGTERM); it is killed at the deadline."""

    slot: int
    pid: int
    deadline: float


@dataclass(frozen=True, slots=True)
class KillWorker:
    """SIGKILL ``pid`` (drain deadline passed, or a replacement of an aborted rollout)."""

    slot: int
    pid: int
    why: str


@dataclass(frozen=True, slots=True)
class AbortRollout:
    """The rollout stopped early; the workers not yet replaced keep serving."""

    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class RolloutComplete:
    """Every slot of the rollout runs a new worker and its old worker is gone."""

    generation: int
    reason: str


Action = (
    RolloutStarted | StartReplacement | RetireWorker | KillWorker | AbortRollout | RolloutComplete
)

# -- state ---------------------------------------------------------------------------------


@dataclass
class _Starting:
    slot: int
    old_pid: int | None
    deadline: float
    new_pid: int | None = None


@dataclass
class _Draining:
    slot: int
    pid: int
    generation: int
    deadline: float
    killed: bool = False


@dataclass
class _Run:
    generation: int
    reason: str
    pending: list[int]
    targets: frozenset[int]


@dataclass(frozen=True)
class RolloutStatus:
    """What the health page shows about cycling."""

    generation: int
    active: bool
    reason: str | None
    pending: tuple[int, ...]
    starting: tuple[int, ...]
    draining: tuple[int, ...]  # pids
    queued: bool
    last_abort: str | None


@dataclass
class _Queued:
    reasons: list[str] = field(default_factory=list)
    slots: set[int] | None = field(default_factory=set)

    def merge(self, request: RolloutRequested) -> None:
        if request.reason not in self.reasons:
            self.reasons.append(request.reason)
        if request.slots is None or self.slots is None:
            self.slots = None
        else:
            self.slots |= request.slots

    def as_request(self) -> RolloutRequested:
        slots = None if self.slots is None else frozenset(self.slots)
        return RolloutRequested(", ".join(self.reasons), slots)


class Rollout:
    """The rollout state machine for one WSGI service's worker slots.

    Feed every event with :meth:`on_event`; perform the returned actions in order.
    """

    def __init__(self, config: RolloutConfig | None = None, generation: int = 0) -> None:
        self.config = config or RolloutConfig()
        self.generation = generation
        self._current: dict[int, int] = {}  # slot -> pid of its accepting worker
        self._run: _Run | None = None
        self._starting: dict[int, _Starting] = {}  # slot -> replacement booting
        self._draining: dict[int, _Draining] = {}  # pid -> retired worker
        self._queued: _Queued | None = None
        self._last_abort: str | None = None

    # -- queries -------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True while a rollout runs (its retired workers may still be draining)."""
        return self._run is not None

    def current(self) -> dict[int, int]:
        """Slot -> pid of the worker accepting for it."""
        return dict(self._current)

    def in_transition(self, slot: int) -> bool:
        """True when a replacement is booting for ``slot``: the core must not respawn it."""
        return slot in self._starting

    def draining_pids(self) -> frozenset[int]:
        """Workers told to drain and not reaped yet."""
        return frozenset(self._draining)

    def next_deadline(self) -> float | None:
        """The earliest start or drain deadline, or None."""
        times = [s.deadline for s in self._starting.values()]
        times += [d.deadline for d in self._draining.values() if not d.killed]
        return min(times, default=None)

    def status(self) -> RolloutStatus:
        """A snapshot for the health page."""
        run = self._run
        return RolloutStatus(
            generation=self.generation,
            active=run is not None,
            reason=run.reason if run else None,
            pending=tuple(run.pending) if run else (),
            starting=tuple(sorted(self._starting)),
            draining=tuple(sorted(self._draining)),
            queued=self._queued is not None,
            last_abort=self._last_abort,
        )

    # -- events --------------------------------------------------------------------------

    def on_event(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` at time ``now``; return the actions to perform, in order."""
        actions: list[Action] = []
        if isinstance(event, RolloutRequested):
            self._on_requested(event, now, actions)
        elif isinstance(event, WorkerStarted):
            self._on_started(event)
        elif isinstance(event, WorkerReady):
            self._on_ready(event, now, actions)
        elif isinstance(event, WorkerExited):
            self._on_exited(event, actions)
        elif isinstance(event, SlotRemoved):
            self._on_removed(event.slot, actions)
        else:
            self._on_deadline(event.now, actions)
        self._advance(now, actions)
        return actions

    def _on_requested(self, request: RolloutRequested, now: float, actions: list[Action]) -> None:
        run = self._run
        if run is not None:
            if request.slots is not None and request.slots <= self._still_to_replace(run):
                return  # the running rollout replaces these slots anyway
            if self._queued is None:
                self._queued = _Queued()
            self._queued.merge(request)
            return
        self._begin(request, actions)

    def _still_to_replace(self, run: _Run) -> frozenset[int]:
        return frozenset(run.pending) | frozenset(self._starting)

    def _begin(self, request: RolloutRequested, actions: list[Action]) -> None:
        slots = sorted(self._current)
        if request.slots is not None:
            slots = [s for s in slots if s in request.slots]
        self.generation += 1
        self._run = _Run(self.generation, request.reason, slots, frozenset(slots))
        actions.append(RolloutStarted(self.generation, request.reason, tuple(slots)))

    def _on_started(self, event: WorkerStarted) -> None:
        starting = self._starting.get(event.slot)
        if starting is not None and starting.new_pid is None:
            starting.new_pid = event.pid

    def _on_ready(self, event: WorkerReady, now: float, actions: list[Action]) -> None:
        starting = self._starting.get(event.slot)
        if starting is None or starting.new_pid not in (None, event.pid):
            # A worker the rollout did not start (first start, respawn by the core).
            self._current[event.slot] = event.pid
            return
        del self._starting[event.slot]
        old = self._current.get(event.slot)
        self._current[event.slot] = event.pid
        if old is not None and old != event.pid:
            self._retire(event.slot, old, now, actions)

    def _retire(self, slot: int, pid: int, now: float, actions: list[Action]) -> None:
        generation = self._run.generation if self._run else self.generation
        deadline = now + self.config.drain_timeout
        self._draining[pid] = _Draining(slot, pid, generation, deadline)
        actions.append(RetireWorker(slot, pid, deadline))

    def _on_exited(self, event: WorkerExited, actions: list[Action]) -> None:
        self._draining.pop(event.pid, None)
        if self._current.get(event.slot) == event.pid:
            del self._current[event.slot]
        starting = self._starting.get(event.slot)
        if starting is not None and starting.new_pid == event.pid:
            del self._starting[event.slot]
            self._abort(
                f"the replacement for slot {event.slot} (pid {event.pid}) exited before "
                "it was ready",
                actions,
            )

    def _on_removed(self, slot: int, actions: list[Action]) -> None:
        self._current.pop(slot, None)
        run = self._run
        if run is not None and slot in run.pending:
            run.pending.remove(slot)
        starting = self._starting.pop(slot, None)
        if starting is not None and starting.new_pid is not None:
            actions.append(KillWorker(slot, starting.new_pid, "slot removed"))

    def _on_deadline(self, now: float, actions: list[Action]) -> None:
        for drain in self._draining.values():
            if not drain.killed and drain.deadline <= now:
                drain.killed = True
                actions.append(KillWorker(drain.slot, drain.pid, "drain deadline passed"))
        late = [s for s in self._starting.values() if s.deadline <= now]
        if late:
            first = late[0]
            self._abort(
                f"the replacement for slot {first.slot} (pid {first.new_pid}) was not ready "
                f"within {self.config.start_timeout:g}s",
                actions,
            )

    def _abort(self, reason: str, actions: list[Action]) -> None:
        run = self._run
        actions.extend(
            KillWorker(s.slot, s.new_pid, "rollout aborted")
            for s in self._starting.values()
            if s.new_pid is not None
        )
        self._starting.clear()
        self._last_abort = reason
        if run is not None:
            actions.append(AbortRollout(run.generation, reason))
            self._run = None

    # -- progress ------------------------------------------------------------------------

    def _advance(self, now: float, actions: list[Action]) -> None:
        while True:
            run = self._run
            if run is None:
                if self._queued is None:
                    return
                request, self._queued = self._queued.as_request(), None
                self._begin(request, actions)
                continue
            self._start_what_fits(run, now, actions)
            if run.pending or self._starting or self._drains_of(run.generation):
                return
            self._run = None
            actions.append(RolloutComplete(run.generation, run.reason))

    def _drains_of(self, generation: int) -> bool:
        return any(d.generation == generation for d in self._draining.values())

    def _start_what_fits(self, run: _Run, now: float, actions: list[Action]) -> None:
        config = self.config
        while run.pending:
            in_transition = len(self._starting) + len(self._draining)
            if len(self._starting) >= config.max_surge or in_transition >= config.max_unavailable:
                return
            slot = run.pending.pop(0)
            if slot not in self._current:
                continue  # its worker is gone; the core respawns it with the new code
            self._starting[slot] = _Starting(slot, self._current[slot], now + config.start_timeout)
            actions.append(StartReplacement(slot, run.generation))
