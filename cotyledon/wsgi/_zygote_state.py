"""PURE bookkeeping of a WSGI service's zygotes: which one forks the workers, which one
is loading new code for a reload, and what to do when one loads, fails or dies.

Job: decisions only. The driver (:mod:`cotyledon.wsgi._zygote`) forks the zygotes, reads
their reports and tells this object what happened; it answers with the pids to retire
and whether the pending reload is ready or aborted. Zygotes are named by pid.

* ``current``: the zygote new workers are forked from (respawns, recycling, scale-up);
* ``loading``: a zygote importing the new code after a SIGHUP; once it reports
  "loaded" it becomes ``current`` and the previous one retires (it will never fork
  again: every later worker runs the new code); if it fails, or does not load within
  its deadline, the reload is aborted and ``current`` keeps forking the old code;
* a ``current`` zygote that dies is forgotten: the next spawn starts a new one.

Must not: fork, signal, read a clock or log.
"""

from __future__ import annotations

import enum


class Death(enum.Enum):
    """What the death of a zygote means."""

    #: The zygote workers are forked from: the next spawn starts a new one.
    CURRENT = "current"
    #: The zygote loading a reload's new code: the reload is aborted.
    LOADING = "loading"
    #: One we retired or never used: nothing to do.
    EXPECTED = "expected"


class Zygotes:
    """The zygotes of one service (see the module docstring)."""

    def __init__(self) -> None:
        self.current: int | None = None
        self.loading: int | None = None
        #: Code generations loaded so far by the zygote serving as ``current`` (1: the
        #: code loaded at start; +1 per reload that loaded new code).
        self.generation = 0
        self._loading_deadline: float | None = None

    def started(self, pid: int) -> None:
        """A zygote (re)started outside a reload has loaded: it forks from now on."""
        self.current = pid
        self.generation = max(self.generation, 1)

    def begin_reload(self, pid: int, now: float, timeout: float) -> list[int]:
        """``pid`` is loading the new code (due by ``now + timeout``); returns the pids to
        retire: a zygote still loading for an earlier reload (the newest code wins)."""
        superseded = [] if self.loading is None else [self.loading]
        self.loading = pid
        self._loading_deadline = now + timeout
        return superseded

    def loaded(self, pid: int) -> list[int] | None:
        """``pid`` reported "app loaded". None: not the zygote of a pending reload (ignore);
        else the reload is ready and the returned pids retire (the previous current)."""
        if pid != self.loading:
            return None
        retired = [] if self.current is None else [self.current]
        self.current = pid
        self.loading = None
        self._loading_deadline = None
        self.generation += 1
        return retired

    def failed(self, pid: int) -> bool:
        """``pid`` reported an error (or died) while loading: True when that aborts the
        pending reload (``current`` keeps forking)."""
        if pid != self.loading:
            return False
        self.loading = None
        self._loading_deadline = None
        return True

    def died(self, pid: int) -> Death:
        """``pid`` exited (reaped)."""
        if pid == self.current:
            self.current = None
            return Death.CURRENT
        if self.failed(pid):
            return Death.LOADING
        return Death.EXPECTED

    def next_deadline(self) -> float | None:
        """When the loading zygote is late (monotonic time), None when none is loading."""
        return self._loading_deadline

    def maybe_late(self, now: float) -> int | None:
        """The loading zygote's pid if its deadline has passed (it is then forgotten: the
        reload is aborted and the driver kills it), else None."""
        if self.loading is None or self._loading_deadline is None:
            return None
        if now < self._loading_deadline:
            return None
        late = self.loading
        self.failed(late)
        return late
