"""The WSGI service's master-side lifecycle: rollout, recycling, hung workers, health data.

Job: compose the building blocks for one WSGI service in the MASTER: the scoreboard, the
rollout state machine, per-worker recycling limits, hung-worker detection with stack
dumps, memory sampling and restart bookkeeping; and build the health snapshot. The core
manager calls it at its few hook points (see ``/work/briefs/lifecycle_integration.md``)
and it acts through an :class:`Effects` object that the core implements, so it can be
tested with a fake.

Must not: fork, wait for children or block. It sends signals only through
:class:`Effects`, logs its decisions under ``cotyledon.wsgi.lifecycle``, and reads
/proc only at its memory-sampling deadline.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cotyledon.wsgi import _hung, _memory, _rollout
from cotyledon.wsgi import _recycling as rc
from cotyledon.wsgi._health import (
    cumulative_buckets,
    rollout_text,
    status_class_pairs,
    worker_rows,
)
from cotyledon.wsgi._health_render import Snapshot
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStats, SlotStatus
from cotyledon.wsgi._stackdump import DUMP_GRACE, DUMP_SIGNAL

LOG = logging.getLogger("cotyledon.wsgi.lifecycle")


class Effects(Protocol):
    """What the core does for the lifecycle (implemented by the master driver)."""

    def start_replacement(self, slot: int, generation: int, board_index: int) -> int:
        """Fork an extra worker for ``slot`` (the old one keeps running); return its pid."""

    def retire(self, pid: int) -> None:
        """SIGTERM ``pid``: stop accepting, drain; the core must not respawn its slot."""

    def send_signal(self, pid: int, signum: int) -> None:
        """Send ``signum`` to ``pid`` (SIGKILL, the stack-dump signal)."""

    def notify(self, **fields: object) -> None:
        """sd_notify from the master (READY, RELOADING, STATUS...)."""


@dataclass(frozen=True)
class LifecycleConfig:
    """Settings of the lifecycle of one WSGI service (from ``ServerConfig``)."""

    workers: int
    threads: int = 1
    rollout: _rollout.RolloutConfig = field(default_factory=_rollout.RolloutConfig)
    recycling: rc.RecyclePolicy = field(default_factory=rc.RecyclePolicy)
    memory_kind: _memory.MemoryKind = _memory.MemoryKind.USS
    memory_interval: float = 5.0
    timeout: float = 30.0
    boot_timeout: float | None = None
    service: str = "wsgi"
    version: str = ""
    binds: tuple[str, ...] = ()
    status_refresh: int = 5


@dataclass
class _Worker:
    slot: int
    board_index: int
    limits: rc.WorkerLimits
    retired: bool = False
    dumped: bool = False  # stacks dumped as hung: killed at dump_kill_at, not a crash
    dump_kill_at: float | None = None


class Lifecycle:
    """Master-side lifecycle of one WSGI service. All calls come from the master loop."""

    def __init__(
        self,
        config: LifecycleConfig,
        effects: Effects,
        board: Scoreboard,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: rc.Random | None = None,
        measure: Callable[[int, _memory.MemoryKind], int | None] = _memory.memory_bytes,
    ) -> None:
        self.config = config
        self.board = board
        self._effects = effects
        self._clock = clock
        self._rng: rc.Random = rng or random.Random()
        self._measure = measure
        self.rollout = _rollout.Rollout(config.rollout)
        self.started_at = clock()
        self._workers: dict[int, _Worker] = {}  # pid -> worker
        self._pending_index: dict[int, int] = {}  # slot -> board index claimed for a fork
        self._why: dict[int, str] = {}  # slot -> reason of its pending replacement
        self.restarts: dict[str, int] = {}
        self.last_restart: dict[int, tuple[str, float]] = {}  # slot -> (reason, when)
        self.memory: dict[int, int | None] = {}
        self._next_memory = self.started_at
        self._full_requested = False  # a SIGHUP/reload waits for its RolloutStarted
        self._reloading = False  # RELOADING=1 sent, READY=1 owed
        self._recycle_paused_until = self.started_at

    # -- hooks the core calls ------------------------------------------------------------

    def claim_board_index(self, slot: int) -> int:
        """Before the core forks a worker for ``slot``: its scoreboard index (pass it on)."""
        index = self.board.claim(self.rollout.generation)
        self._pending_index[slot] = index
        return index

    def on_forked(self, slot: int, pid: int) -> None:
        """Right after a fork for ``slot`` (first start, respawn or replacement)."""
        index = self._pending_index.pop(slot)
        limits = rc.draw_limits(self.config.recycling, self._rng)
        self._workers[pid] = _Worker(slot, index, limits)
        self._feed(_rollout.WorkerStarted(slot, pid))

    def on_ready(self, slot: int, pid: int) -> None:
        """The worker reported it accepts connections."""
        self._feed(_rollout.WorkerReady(slot, pid))

    def on_exited(self, slot: int, pid: int, exit_code: int) -> None:
        """The core reaped ``pid``."""
        worker = self._workers.pop(pid, None)
        if worker is not None:
            self.board.release(worker.board_index)
            if not worker.retired and not worker.dumped:
                LOG.warning("Worker %d (pid %d) exited with %d", slot, pid, exit_code)
                self._count_restart(slot, "crashed")
        self.memory.pop(pid, None)
        self._feed(_rollout.WorkerExited(slot, pid))

    def request_rollout(self, reason: str, label: str = "reload") -> None:
        """SIGHUP or the reloader: cycle every worker progressively."""
        for slot in self.rollout.current():
            self._why.setdefault(slot, label)
        self._full_requested = True
        self._feed(_rollout.RolloutRequested(reason))

    def scale_down(self, slot: int) -> int | None:
        """SIGTTOU: ``slot`` is no longer served; its worker drains and is not replaced.

        Returns the pid retired (through :meth:`Effects.retire`; the core owns its drain
        deadline, as for any scale-down), or None when the slot had no worker.
        """
        pid = self.rollout.current().get(slot)
        self._why.pop(slot, None)
        self._feed(_rollout.SlotRemoved(slot))
        worker = self._workers.get(pid) if pid is not None else None
        if pid is None or worker is None:
            return None
        worker.retired = True
        LOG.info("Worker %d (pid %d) retired: one worker fewer", slot, pid)
        self._effects.retire(pid)
        return pid

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` must run next (None: no need to wake up)."""
        times = [self.rollout.next_deadline()]
        beats = self._heartbeats(self.board.read_all())
        times.append(_hung.next_check(beats, self.config.timeout, self.config.boot_timeout))
        times += [w.dump_kill_at for w in self._workers.values()]
        if self._needs_memory():
            times.append(self._next_memory)
        return min((t for t in times if t is not None), default=None)

    def on_tick(self, now: float | None = None) -> None:
        """Deadlines, hung workers, memory sampling and recycling."""
        now = self._clock() if now is None else now
        deadline = self.rollout.next_deadline()
        if deadline is not None and deadline <= now:
            self._feed(_rollout.DeadlineReached(now), now)
        self._kill_dumped(now)
        stats = self.board.read_all()
        self._check_hung(stats, now)
        if self._needs_memory() and now >= self._next_memory:
            self._sample_memory()
            self._next_memory = now + (self.config.memory_interval or 5.0)
        self._check_recycling(stats, now)

    # -- health ---------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> Snapshot:
        """The health page's data now."""
        now = self._clock() if now is None else now
        stats = self.board.read_all()
        totals = self.board.totals(stats)
        return Snapshot(
            service=self.config.service,
            version=self.config.version,
            master_pid=os.getpid(),
            uptime=now - self.started_at,
            binds=self.config.binds,
            workers_configured=self.config.workers,
            threads=self.config.threads,
            workers=worker_rows(stats, now, self.memory, self.last_restart, self._slots()),
            requests_total=totals.requests,
            latency_sum=totals.latency_sum,
            latency_buckets=cumulative_buckets(totals),
            status_classes=status_class_pairs(totals),
            restarts=tuple(sorted(self.restarts.items())),
            generation=self.rollout.generation,
            rollout=rollout_text(self.rollout.status()),
            memory_kind=self.config.memory_kind.value,
            refresh_seconds=self.config.status_refresh,
        )

    # -- internals ------------------------------------------------------------------------

    def _slots(self) -> dict[int, int]:
        """Scoreboard index -> worker slot."""
        return {w.board_index: w.slot for w in self._workers.values()}

    def _feed(self, event: _rollout.Event, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for action in self.rollout.on_event(event, now):
            self._perform(action, now)

    def _perform(self, action: _rollout.Action, now: float) -> None:
        if isinstance(action, _rollout.StartReplacement):
            self._start_replacement(action)
        elif isinstance(action, _rollout.RetireWorker):
            worker = self._workers.get(action.pid)
            if worker is not None:
                worker.retired = True
            self._count_restart(action.slot, self._why.pop(action.slot, "reload"), now)
            self._effects.retire(action.pid)
        elif isinstance(action, _rollout.KillWorker):
            LOG.warning("Killing worker %d (pid %d): %s", action.slot, action.pid, action.why)
            killed = self._workers.get(action.pid)
            if killed is not None:
                killed.retired = True  # its exit is ours, not a crash
            self._effects.send_signal(action.pid, signal.SIGKILL)
        elif isinstance(action, _rollout.RolloutStarted):
            LOG.info("Rollout %d started (%s)", action.generation, action.reason)
            if self._full_requested:
                self._full_requested = False
                self._reloading = True
                self._effects.notify(RELOADING=1, MONOTONIC_USEC=int(now * 1e6))
        elif isinstance(action, _rollout.AbortRollout):
            LOG.error("Rollout %d aborted: %s", action.generation, action.reason)
            # Broken new code must not turn recycling into a loop of doomed replacements.
            self._recycle_paused_until = now + self.config.rollout.start_timeout
            self._end_run(f"reload aborted: {action.reason}")
        elif isinstance(action, _rollout.RolloutComplete):
            LOG.info("Rollout %d complete (%s)", action.generation, action.reason)
            workers = len(self.rollout.current())
            self._end_run(f"{workers} workers, generation {action.generation}")

    def _end_run(self, status: str) -> None:
        # Keep the reasons of slots a follow-up rollout (already started) will replace.
        state = self.rollout.status()
        keep = set(state.pending) | set(state.starting)
        self._why = {slot: why for slot, why in self._why.items() if slot in keep}
        if self._reloading:
            self._reloading = False
            self._effects.notify(READY=1, STATUS=status)
        else:
            self._effects.notify(STATUS=status)

    def _start_replacement(self, action: _rollout.StartReplacement) -> None:
        index = self.claim_board_index(action.slot)
        try:
            pid = self._effects.start_replacement(action.slot, action.generation, index)
        except OSError as exc:
            self._pending_index.pop(action.slot, None)
            self.board.release(index)
            LOG.error("Cannot start a replacement for worker %d: %s", action.slot, exc)
            return
        self.on_forked(action.slot, pid)

    def _count_restart(self, slot: int, reason: str, now: float | None = None) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self.last_restart[slot] = (reason, self._clock() if now is None else now)

    def _heartbeats(self, stats: list[SlotStats]) -> list[_hung.Heartbeat]:
        by_index = {w.board_index: (pid, w) for pid, w in self._workers.items()}
        beats = []
        for s in stats:
            owner = by_index.get(s.index)
            if owner is None or owner[1].dumped:
                continue
            beats.append(
                _hung.Heartbeat(
                    pid=owner[0],
                    last_heartbeat=s.last_heartbeat,
                    booting=s.status is SlotStatus.BOOTING,
                    draining=owner[1].retired or s.status is SlotStatus.DRAINING,
                )
            )
        return beats

    def _check_hung(self, stats: list[SlotStats], now: float) -> None:
        beats = self._heartbeats(stats)
        for hung in _hung.find_hung(beats, now, self.config.timeout, self.config.boot_timeout):
            worker = self._workers[hung.pid]
            LOG.error(
                "Worker %d (pid %d) silent for %.1fs (limit %.1fs%s): dumping its stacks, "
                "then killing it",
                worker.slot,
                hung.pid,
                hung.silent_for,
                hung.limit,
                ", booting" if hung.booting else "",
            )
            self._effects.send_signal(hung.pid, DUMP_SIGNAL)
            worker.dumped = True
            worker.dump_kill_at = now + DUMP_GRACE
            self._count_restart(worker.slot, "hung", now)

    def _kill_dumped(self, now: float) -> None:
        for pid, worker in self._workers.items():
            if worker.dump_kill_at is not None and worker.dump_kill_at <= now:
                worker.dump_kill_at = None  # once
                self._effects.send_signal(pid, signal.SIGKILL)

    def _needs_memory(self) -> bool:
        """Sample when a memory limit is set or the status port shows memory (interval > 0)."""
        return bool(self.config.recycling.max_memory) or self.config.memory_interval > 0

    def _sample_memory(self) -> None:
        for pid in self._workers:
            self.memory[pid] = self._measure(pid, self.config.memory_kind)

    def _check_recycling(self, stats: list[SlotStats], now: float) -> None:
        if not self.config.recycling.enabled or now < self._recycle_paused_until:
            return
        current = self.rollout.current()
        by_index = {s.index: s for s in stats}
        for slot, pid in current.items():
            worker = self._workers.get(pid)
            if worker is None or worker.retired or slot in self._why:
                continue
            s = by_index.get(worker.board_index)
            if s is None or s.status is not SlotStatus.READY:
                continue
            decision = rc.maybe_recycle(
                worker.limits,
                requests_served=s.requests,
                age=now - s.started_at,
                memory=self.memory.get(pid),
            )
            if decision is not None:
                LOG.info("Recycling worker %d (pid %d): %s", slot, pid, decision.detail)
                self._why[slot] = decision.reason.value
                self._feed(
                    _rollout.RolloutRequested(decision.reason.value, frozenset({slot})), now
                )
