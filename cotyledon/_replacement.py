"""PURE bookkeeping of a service's progressive worker replacement.

Job: for one service whose workers are *replaced* rather than signalled on reload, remember
which worker ids still have to be replaced, which are being replaced right now (the old
pid keeps serving until its replacement has entered ``run()``), why, and the limits
(how many at once, how long a replacement may take to start). The supervisor owns the
slots and the processes; it asks this object what to do next.

A replacement of worker id ``w``:

1. the old process ``p`` stays in service; the slot is handed to a new process;
2. when the new process has entered ``run()``, ``p`` gets SIGTERM (it drains);
3. if the new process exits or fails to start within ``start_timeout``, the replacement
   is *aborted*: ``p`` goes back into the slot, the queue is dropped (the new code is
   suspect), and whatever was already replaced stays replaced.

Must not: know about processes beyond pids, or read a clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from cotyledon._record import FrozenRecord, Record
from cotyledon.types import WorkerId

#: How the workers of a service take a reload (SIGHUP).
RELOAD_MODES = ("signal", "replace")


class ReplacePolicy(FrozenRecord):
    """How a service's workers are replaced.

    :param max_surge: workers replaced at once (each has its old process still serving).
    :param start_timeout: seconds a replacement has to enter ``run()``, else the
        replacement is aborted and the old worker keeps serving.
    """

    __slots__ = ("max_surge", "start_timeout")

    max_surge: int
    start_timeout: float

    def __init__(self, max_surge: int = 1, start_timeout: float = 60.0) -> None:
        if isinstance(max_surge, bool) or not isinstance(max_surge, int):
            raise TypeError(f"max_surge must be an int >= 1, not: {max_surge!r}")
        if max_surge < 1:
            raise ValueError(f"max_surge must be an int >= 1, not: {max_surge!r}")
        if not start_timeout > 0:
            raise ValueError(f"start_timeout must be > 0, not: {start_timeout!r}")
        self.max_surge = max_surge
        self.start_timeout = start_timeout


class Replacement(Record):
    """The replacement state of one service."""

    __slots__ = ("aborted", "outgoing", "policy", "queue", "reasons", "reloading")

    policy: ReplacePolicy
    queue: list[WorkerId]
    #: worker id -> pid of the old process still serving while its replacement starts.
    outgoing: dict[WorkerId, int]
    reasons: dict[WorkerId, str]
    #: A reload asked for this run (systemd RELOADING until it is done).
    reloading: bool
    #: A replacement of this run was aborted (the run ends without replacing every one).
    aborted: bool

    def __init__(self, policy: ReplacePolicy) -> None:
        self.policy = policy
        self.queue = []
        self.outgoing = {}
        self.reasons = {}
        self.reloading = False
        self.aborted = False

    @property
    def active(self) -> bool:
        return bool(self.queue or self.outgoing)

    def request(self, worker_ids: Iterable[WorkerId], reason: str) -> None:
        """Queue ``worker_ids`` (again, if a replacement of theirs is under way: a reload
        after the replacement was forked must still be honoured)."""
        for wid in worker_ids:
            if wid not in self.queue:
                self.queue.append(wid)
            self.reasons.setdefault(wid, reason)

    def next_worker(self) -> WorkerId | None:
        """The next worker id to replace now, or None (surge limit reached, or done)."""
        if len(self.outgoing) >= self.policy.max_surge:
            return None
        for wid in list(self.queue):
            if wid not in self.outgoing:
                self.queue.remove(wid)
                return wid
        return None

    def begin(self, wid: WorkerId, old_pid: int) -> None:
        self.outgoing[wid] = old_pid

    def finish(self, wid: WorkerId) -> tuple[int, str]:
        """The replacement of ``wid`` entered run(): returns (old pid to stop, reason)."""
        old_pid = self.outgoing.pop(wid)
        if wid in self.queue:  # queued again (a new SIGHUP): it keeps its reason
            return old_pid, self.reasons[wid]
        return old_pid, self.reasons.pop(wid, "")

    def old_pid_exited(self, pid: int) -> WorkerId | None:
        """An outgoing process died on its own: forget it (its replacement goes on)."""
        for wid, old in list(self.outgoing.items()):
            if old == pid:
                del self.outgoing[wid]
                return wid
        return None

    def abort(self, wid: WorkerId) -> int | None:
        """The replacement of ``wid`` failed: drop the queue (the new code is suspect);
        returns the old pid to put back in the slot (None if it is gone meanwhile).
        Other replacements already under way go on."""
        self.queue.clear()
        self.aborted = True
        self.reasons = {w: r for w, r in self.reasons.items() if w in self.outgoing}
        self.reasons.pop(wid, None)
        return self.outgoing.pop(wid, None)

    def clear(self) -> None:
        """Stopping: nothing more to replace."""
        self.queue.clear()
        self.outgoing.clear()
        self.reasons.clear()
        self.reloading = False
        self.aborted = False

    def forget_from(self, workers: int) -> list[int]:
        """Scale-down to ``workers``: drop ids beyond it; returns their outgoing pids."""
        self.queue = [wid for wid in self.queue if wid < workers]
        gone = [pid for wid, pid in self.outgoing.items() if wid >= workers]
        self.outgoing = {wid: pid for wid, pid in self.outgoing.items() if wid < workers}
        return gone
