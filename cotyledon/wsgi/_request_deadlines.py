"""PURE: which in-flight requests passed their deadline (``--request-timeout``).

Job: the bookkeeping of per-request deadlines in one worker. A request starts with a
deadline (its start plus the timeout); when the deadline passes it is reported once as
:class:`Expired` (the driver logs its stack, answers ``504`` if it can and interrupts
its thread); if its thread still has not returned ``grace`` seconds later it is reported
once as :class:`Stuck` (the driver has the worker replaced).

Must not: read clocks, touch threads or sockets, or log (``_deadline_watch`` does).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class InFlight:
    """One request being served."""

    key: Hashable  # the serving thread's identity
    started: float
    deadline: float
    method: str
    path: str
    expired_at: float | None = None
    stuck: bool = False


@dataclass(frozen=True)
class Expired:
    """``request`` passed its deadline just now."""

    request: InFlight


@dataclass(frozen=True)
class Stuck:
    """``request`` passed its deadline and its thread did not return within the grace."""

    request: InFlight


@dataclass
class DeadlineBook:
    """In-flight requests and their deadlines, for ``timeout`` and ``grace`` seconds."""

    timeout: float
    grace: float
    _requests: dict[Hashable, InFlight] = field(default_factory=dict)

    def start(self, key: Hashable, now: float, method: str, path: str) -> float:
        """A request starts on ``key``; returns its deadline."""
        deadline = now + self.timeout
        self._requests[key] = InFlight(key, now, deadline, method, path)
        return deadline

    def finish(self, key: Hashable) -> InFlight | None:
        """The request on ``key`` returned (late or not); what it was."""
        return self._requests.pop(key, None)

    def __len__(self) -> int:
        return len(self._requests)

    def next_deadline(self) -> float | None:
        """When :meth:`due` has something to say next; None: nothing in flight to watch."""
        times = []
        for request in self._requests.values():
            if request.expired_at is None:
                times.append(request.deadline)
            elif not request.stuck:
                times.append(request.expired_at + self.grace)
        return min(times, default=None)

    def due(self, now: float) -> list[Expired | Stuck]:
        """What happened by ``now``; each request is reported expired once, stuck once."""
        events: list[Expired | Stuck] = []
        for request in self._requests.values():
            if request.expired_at is None:
                if now >= request.deadline:
                    request.expired_at = now
                    events.append(Expired(request))
            elif not request.stuck and now >= request.expired_at + self.grace:
                request.stuck = True
                events.append(Stuck(request))
        return events
