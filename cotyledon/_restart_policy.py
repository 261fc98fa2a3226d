"""PURE respawn budget of one service: when may its next worker be forked, and when do we
give up?

Job: remember the recent fork and restart times of one service and answer two questions:

* :meth:`RestartBudget.next_fork_at` - upstream cotyledon's rate limit ("N forks per N
  seconds, then a 5 s pause"), made a per-service deadline: with ``N`` the service's worker
  count, ``N + 1`` restarts within ``N`` seconds are allowed, the next one waits for a
  pause (5 s), after which a fresh burst is allowed. Only restarts count (forks that
  replace a dead worker): starting or scaling up never eats the budget, so 50 workers
  killed at once are all replaced at once. Upstream slept for the pause in its
  supervisor thread, blocking every other respawn and the shutdown (spec/api.md 6.8);
  here it only moves this service's own next fork.
* :meth:`RestartBudget.record_restart` - the opt-in give-up policy (Erlang/OTP's
  intensity/period): more than ``max_restarts`` restarts within ``period`` seconds means
  the service is broken and the manager stops.

Must not: read a clock, sleep, log or import ``os``/``time``/``signal``/``logging``.
"""

from __future__ import annotations

from collections import deque

from cotyledon._record import FrozenRecord

#: Upstream's pause after forking too fast, in seconds.
DEFAULT_PAUSE = 5.0


class GiveUpPolicy(FrozenRecord):
    """Stop the manager when a service restarts more than ``max_restarts`` times within
    ``period`` seconds (OTP ``intensity``/``period``).

    :raises ValueError: ``max_restarts`` < 0 or ``period`` <= 0.
    """

    __slots__ = ("max_restarts", "period")

    max_restarts: int
    period: float

    def __init__(self, max_restarts: int, period: float) -> None:
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int):
            raise TypeError(
                f"'max_restarts' must be an int >= 0, not: {max_restarts!r} "
                f"({type(max_restarts).__name__})"
            )
        if max_restarts < 0:
            raise ValueError(f"'max_restarts' must be an int >= 0, not: {max_restarts}")
        if not isinstance(period, (int, float)) or period <= 0:
            raise ValueError(f"'restart_period' must be a number > 0, not: {period!r}")
        self.max_restarts = max_restarts
        self.period = period


class RestartBudget:
    """The respawn budget of one service (all its worker slots share it)."""

    def __init__(
        self,
        workers: int,
        pause: float = DEFAULT_PAUSE,
        give_up: GiveUpPolicy | None = None,
    ) -> None:
        self.pause = pause
        self.give_up = give_up
        self._workers = max(workers, 1)
        self._forks: deque[float] = deque()
        self._restarts: deque[float] = deque()
        self._resume_at: float | None = None

    @property
    def window(self) -> float:
        """Seconds over which forks are counted (upstream: N seconds for N workers)."""
        return float(self._workers)

    @property
    def limit(self) -> int:
        """Forks allowed within :attr:`window` before a pause (upstream: about N + 1)."""
        return self._workers + 1

    @property
    def paused_until(self) -> float | None:
        """End of the current pause, if the service is paused."""
        return self._resume_at

    def resize(self, workers: int) -> None:
        """The service's worker count changed (reconfigure): new window, fresh history."""
        self._workers = max(workers, 1)
        self.clear()

    def clear(self) -> None:
        """Forget the fork history and any pause (upstream: on SIGHUP and reconfigure)."""
        self._forks.clear()
        self._resume_at = None

    def _trim(self, now: float) -> None:
        while self._forks and self._forks[0] <= now - self.window:
            self._forks.popleft()

    def next_fork_at(self, now: float) -> float:
        """When the next fork of this service may happen (``<= now``: at once).

        Does not change the state: call :meth:`pause_until` to start the pause it implies.
        """
        if self._resume_at is not None:
            return self._resume_at
        self._trim(now)
        if len(self._forks) >= self.limit:
            return now + self.pause
        return now

    def pause_until(self, when: float) -> None:
        """Start a pause: no fork before ``when``; the first fork after it is allowed."""
        self._resume_at = when

    def record_fork(self, now: float) -> None:
        """A dead worker of this service was just replaced by a fork. The first fork after
        a pause ends it and starts a fresh window."""
        if self._resume_at is not None:
            self._resume_at = None
            self._forks.clear()
        self._trim(now)
        self._forks.append(now)

    def record_restart(self, now: float) -> bool:
        """A dead worker is about to be restarted; True if the give-up policy says stop."""
        if self.give_up is None:
            return False
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - self.give_up.period:
            self._restarts.popleft()
        return len(self._restarts) > self.give_up.max_restarts
