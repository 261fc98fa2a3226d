"""The WSGI service's part of the master: scoreboard, hung workers, the status page.

Job: one :class:`WSGIMaster` per WSGI service, attached to the manager as a master
extension (:mod:`cotyledon._extension`). It

* creates the scoreboard (shared memory) before the first fork and gives each worker its
  slot: :meth:`before_fork` claims one and leaves its index in :data:`assigned_slot`,
  which the forked child reads (fork copies the master's memory);
* watches heartbeats: a worker silent for longer than ``--timeout`` gets its thread
  stacks dumped to the log (SIGUSR2 + SIGCONT, for a stopped one), then SIGKILL after
  :data:`~cotyledon.wsgi._stackdump.DUMP_GRACE`; the supervisor respawns it;
* remembers each slot's last restart and why (reload, recycling, crash, hung); a
  replacement counts once its new process has entered run(), and one that is aborted
  (the new process failed to start) counts nothing: the old process keeps its slot;
* logs a worker's abnormal death (killed by a signal: ERROR; a non-zero exit status:
  WARNING) with its worker id, pid and signal or status, beside the core's INFO line
  ("Child ... killed by signal ...", kept as in 2.x); a worker stopped on request
  (status 0 or SIGTERM) or by a fast exit (SIGINT) is not logged;
* serves the status page (``--status-port``) from the master's event loop, with the
  ``/livez`` and ``/readyz`` probes;
* on SIGTERM (:meth:`stop_requested`, run by the core's terminate hook before it signals
  the workers): ``/readyz`` answers 503 at once, the workers learn when the stop was
  requested through the shared :class:`~cotyledon.wsgi._stop_notice.StopNotice`, and the
  sd-notify ``STATUS=`` says which phase of the stop we are in;
* SIGUSR1: reopens the master's log files and passes the signal to the workers (they
  reopen theirs and the access log); SIGTTIN / SIGTTOU: one worker more / fewer;
  SIGQUIT: the fast stop of SIGINT.

Must not: block (the page's sockets are non-blocking, a snapshot reads shared memory and
a few /proc files), or wake the master when there is nothing to watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cotyledon import systemd
from cotyledon._utils import signal_to_name
from cotyledon.types import ServiceId, WorkerId
from cotyledon.wsgi import _hung, _logfiles, _memory
from cotyledon.wsgi._config import ServerConfig
from cotyledon.wsgi._health import (
    HealthServer,
    cumulative_buckets,
    status_class_pairs,
    worker_rows,
)
from cotyledon.wsgi._health_render import Snapshot
from cotyledon.wsgi._readiness import Readiness, StopPhase, StopPlan, readiness, status_line
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus
from cotyledon.wsgi._stackdump import DUMP_GRACE, DUMP_SIGNAL
from cotyledon.wsgi._stop_notice import StopNotice

LOG = logging.getLogger("cotyledon.wsgi.master")

#: The scoreboard slot of the worker being forked (read by the child after the fork).
assigned_slot: int | None = None
#: Slots beyond the configured workers: replacements, draining workers, SIGTTIN.
SPARE_SLOTS = 32


@dataclass
class _Worker:
    worker_id: int
    index: int
    dump_kill_at: float | None = None  # hung: stacks dumped, SIGKILL due at this time


class WSGIMaster:
    """Master-side state of one WSGI service (see the module docstring).

    Set :attr:`service_id` and :attr:`manager` once the service is added.
    """

    signals: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU, signal.SIGQUIT)

    def __init__(
        self,
        config: ServerConfig,
        binds: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        kill: Callable[[int, int], None] = os.kill,
    ) -> None:
        self.config = config
        self.binds = tuple(binds)
        self.service_id: ServiceId | None = None
        self.manager: Any = None  # the cotyledon.ServiceManager (for SIGTTIN/SIGTTOU)
        #: ``--preload``: () -> (zygote pid or None, its code generation).
        self.zygote: Callable[[], tuple[int | None, int]] | None = None
        self.workers = config.workers
        self.generation = 0  # reloads so far: the workers forked since carry it
        self.board = Scoreboard(config.workers + config.max_surge + SPARE_SLOTS, clock)
        self.stop_notice = StopNotice()
        self.stop_plan = StopPlan(config.shutdown_delay)
        self._stop_status_at: float | None = None  # the STATUS line changes phase then
        #: Closes the master's listening sockets (set by ``add()``); called once the
        #: shutdown delay is over.
        self.close_listeners: Callable[[], None] = lambda: None
        self.health: HealthServer | None = None
        if config.status_port is not None:
            self.health = HealthServer(
                self.snapshot,
                host=config.status_host,
                port=config.status_port,
                readiness=self.readiness,
            )
        self._clock = clock
        self._kill = kill
        self._started_at = clock()
        self._workers: dict[int, _Worker] = {}  # pid -> worker
        self._current: dict[WorkerId, int] = {}  # worker id -> pid in its slot
        self._pending: dict[WorkerId, int] = {}  # worker id -> slot claimed for a fork
        self._why: dict[WorkerId, str] = {}  # worker id -> why its next process comes
        self._replacing: dict[WorkerId, str] = {}  # worker id -> why, until replaced/aborted
        self.restarts: dict[str, int] = {}
        self.last_restart: dict[int, tuple[str, float]] = {}  # worker id -> (why, when)

    def _ours(self, service_id: ServiceId) -> bool:
        return service_id == self.service_id

    # -- MasterExtension -------------------------------------------------------------------

    def read_fds(self) -> list[int]:
        return self.health.read_fds() if self.health is not None else []

    def write_fds(self) -> list[int]:
        return self.health.write_fds() if self.health is not None else []

    def on_ready(self, readable: list[int], writable: list[int]) -> None:
        if self.health is not None:
            self.health.dispatch(readable, writable)

    def next_deadline(self) -> float | None:
        times = [w.dump_kill_at for w in self._workers.values()]
        times.append(self._stop_status_at)
        times.append(_hung.next_check(self._heartbeats(), self.config.timeout))
        if self.health is not None:
            times.append(self.health.next_deadline())
        return min((t for t in times if t is not None), default=None)

    def on_tick(self, now: float) -> None:
        if self.health is not None:
            self.health.expire(now)
        if self._stop_status_at is not None and now >= self._stop_status_at:
            self._stop_status_at = None
            self._stop_accepting(now)
        self._kill_dumped(now)
        for hung in _hung.find_hung(self._heartbeats(), now, self.config.timeout):
            self._dump_and_kill(hung, now)

    def before_fork(self, service_id: ServiceId, worker_id: WorkerId) -> None:
        global assigned_slot  # handed to the child through fork
        assigned_slot = None
        if not self._ours(service_id):
            return
        failed = self._pending.pop(worker_id, None)
        if failed is not None:  # the previous fork for this slot failed: no child has it
            self.board.release(failed)
        index = self.board.claim(generation=self.generation)
        self._pending[worker_id] = index
        assigned_slot = index

    def on_spawned(self, service_id: ServiceId, worker_id: WorkerId, pid: int) -> None:
        if not self._ours(service_id):
            return
        index = self._pending.pop(worker_id, None)
        if index is None:  # no slot could be claimed (logged): serve without statistics
            return
        self._workers[pid] = _Worker(worker_id, index)
        self._current[worker_id] = pid
        why = self._why.pop(worker_id, None)
        if why is not None and worker_id not in self._replacing:
            self._count_restart(worker_id, why)  # a replacement counts in on_replaced()

    def on_replacing(self, service_id: ServiceId, worker_id: WorkerId, reason: str) -> None:
        if not self._ours(service_id):
            return
        why = (reason or "replace").split(":")[0]
        if why == "reload" and worker_id == min(self._current, default=worker_id):
            self.generation += 1  # a reload replaces every worker, lowest id first
        self._replacing[worker_id] = why

    def on_replaced(self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None) -> None:
        if not self._ours(service_id):
            return
        why = self._replacing.pop(worker_id, None)
        if why is not None:
            self._count_restart(worker_id, why)

    def on_replace_aborted(
        self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None
    ) -> None:
        """The old process keeps its slot: no restart, and its row keeps its history."""
        if not self._ours(service_id):
            return
        self._replacing.pop(worker_id, None)
        self._why.pop(worker_id, None)  # the failed new process is no crash of the slot
        if old_pid is not None and old_pid in self._workers:
            self._current[worker_id] = old_pid

    def on_exited(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        worker = self._workers.pop(pid, None)
        if worker is None:
            return
        self.board.release(worker.index)
        self._log_death(worker, pid, exit_code)
        if self._current.get(worker_id) != pid:
            return  # an old worker of a replacement, or a surplus one
        del self._current[worker_id]
        if worker.dump_kill_at is None:
            self._why.setdefault(worker_id, "crashed" if exit_code else "exited")

    def _log_death(self, worker: _Worker, pid: int, exit_code: int) -> None:
        """An abnormal death, at a level a log filtered at WARNING keeps (see the module
        docstring); the core's INFO line stays as it was for drop-in compatibility."""
        if exit_code in (0, -signal.SIGTERM) or getattr(self.manager, "_fast_exit", False):
            return
        if exit_code > 0:
            LOG.warning(
                "Worker %d (pid %d) exited with status %d", worker.worker_id, pid, exit_code
            )
            return
        hint = ""
        if exit_code == -signal.SIGKILL and worker.dump_kill_at is None:
            hint = " (out of memory? killed from outside?)"
        LOG.error(
            "Worker %d (pid %d) killed by signal %s%s",
            worker.worker_id,
            pid,
            signal_to_name(-exit_code),
            hint,
        )

    def on_signal(self, signum: int) -> None:
        if signum == signal.SIGUSR1:
            reopened = _logfiles.reopen_log_files()
            LOG.info("SIGUSR1: %d log file(s) reopened; telling the workers", reopened)
            for pid in list(self._current.values()):
                with contextlib.suppress(ProcessLookupError):
                    self._kill(pid, signal.SIGUSR1)
        elif signum == signal.SIGTTIN:
            self._resize(self.workers + 1)
        elif signum == signal.SIGTTOU:
            self._resize(self.workers - 1)
        elif signum == signal.SIGQUIT:
            # gunicorn's convention: SIGQUIT is a quick stop, like SIGINT (the core's own
            # programs keep 2.x's default action for it).
            LOG.info("SIGQUIT: stopping at once, as on SIGINT")
            self._kill(os.getpid(), signal.SIGINT)

    def _resize(self, workers: int) -> None:
        limit = self.board.capacity - self.config.max_surge
        if not 1 <= workers <= limit:
            LOG.warning(
                "Staying at %d worker%s (between 1 and %d)",
                self.workers,
                "" if self.workers == 1 else "s",
                limit,
            )
            return
        LOG.info(
            "Going from %d to %d worker%s", self.workers, workers, "" if workers == 1 else "s"
        )
        self.workers = workers
        if self.manager is not None and self.service_id is not None:
            self.manager.reconfigure(self.service_id, workers)

    def close(self) -> None:
        if self.health is not None:
            with contextlib.suppress(OSError):
                self.health.close()

    # -- the stop sequence -----------------------------------------------------------------

    def stop_requested(self) -> None:
        """SIGTERM (the core's terminate hook, before the workers are signalled)."""
        now = self._clock()
        if self.stop_plan.requested_at is not None:
            return
        self.stop_plan = self.stop_plan.requested(now)
        self.stop_notice.announce(now)
        if self.stop_plan.phase(now) is StopPhase.DELAYING:
            LOG.info(
                "Stopping: /readyz answers 503; serving %gs more (--shutdown-delay) before "
                "closing the listening sockets",
                self.stop_plan.delay,
            )
            self._stop_status_at = self.stop_plan.accept_until
            systemd.notify(status=status_line(self.stop_plan, now, 0))
        else:
            self._stop_accepting(now)

    def _stop_accepting(self, now: float) -> None:
        """The shutdown delay is over: the workers drain and close; so does the master."""
        self.close_listeners()
        in_flight = sum(s.in_flight for s in self.board.read_all() if s.pid in self._workers)
        systemd.notify(status=status_line(self.stop_plan, now, in_flight))

    def readiness(self) -> Readiness:
        """``/readyz``: not stopping, and at least ``--ready-min`` workers accept."""
        ready = sum(
            1
            for s in self.board.read_all()
            if s.status is SlotStatus.READY and s.pid in self._workers
        )
        phase = self.stop_plan.phase(self._clock())
        return readiness(phase, ready, self.config.ready_min)

    # -- hung workers ----------------------------------------------------------------------

    def _heartbeats(self) -> list[_hung.Heartbeat]:
        beats = []
        for pid, worker in self._workers.items():
            if worker.dump_kill_at is not None:
                continue
            stats = self.board.read(worker.index)
            if stats.pid != pid:  # forked, not yet written by the child: booting
                beats.append(_hung.Heartbeat(pid, stats.last_heartbeat, booting=True))
                continue
            beats.append(
                _hung.Heartbeat(
                    pid,
                    stats.last_heartbeat,
                    booting=stats.status is SlotStatus.BOOTING,
                    draining=stats.status is SlotStatus.DRAINING,
                )
            )
        return beats

    def _dump_and_kill(self, hung: _hung.Hung, now: float) -> None:
        worker = self._workers[hung.pid]
        LOG.error(
            "Worker %d (pid %d) silent for %.1fs (--timeout %gs%s): its thread stacks "
            "follow, then it is killed",
            worker.worker_id,
            hung.pid,
            hung.silent_for,
            hung.limit,
            ", while starting" if hung.booting else "",
        )
        with contextlib.suppress(ProcessLookupError):
            self._kill(hung.pid, DUMP_SIGNAL)
            self._kill(hung.pid, signal.SIGCONT)  # a stopped process runs its handler
        worker.dump_kill_at = now + DUMP_GRACE
        self._why[WorkerId(worker.worker_id)] = "hung"

    def _kill_dumped(self, now: float) -> None:
        for pid, worker in self._workers.items():
            if worker.dump_kill_at is not None and worker.dump_kill_at <= now:
                worker.dump_kill_at = float("inf")  # once
                with contextlib.suppress(ProcessLookupError):
                    self._kill(pid, signal.SIGKILL)

    # -- status page -----------------------------------------------------------------------

    def _count_restart(self, worker_id: WorkerId, why: str) -> None:
        self.restarts[why] = self.restarts.get(why, 0) + 1
        self.last_restart[worker_id] = (why, self._clock())

    def snapshot(self) -> Snapshot:
        """The status page's data, now."""
        now = self._clock()
        stats = self.board.read_all()
        totals = self.board.totals(stats)
        memory = {pid: _memory.memory_bytes(pid) for pid in self._workers}
        slots = {w.index: w.worker_id for w in self._workers.values()}
        zygote_pid, zygote_generation = self.zygote() if self.zygote is not None else (None, 0)
        return Snapshot(
            service="cotyledon-wsgi",
            version=_package_version(),
            master_pid=os.getpid(),
            uptime=now - self._started_at,
            binds=self.binds,
            workers_configured=self.workers,
            threads=self.config.threads,
            workers=worker_rows(stats, now, memory, self.last_restart, slots),
            requests_total=totals.requests,
            latency_sum=totals.latency_sum,
            latency_buckets=cumulative_buckets(totals),
            status_classes=status_class_pairs(totals),
            restarts=tuple(sorted(self.restarts.items())),
            generation=self.generation,
            rollout="replacing workers" if len(self._workers) > self.workers else "idle",
            zygote_pid=zygote_pid,
            zygote_generation=zygote_generation,
        )


def _package_version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("cotyledon")
    except Exception:
        return ""
