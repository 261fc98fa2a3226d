"""PURE: where a stopping WSGI server is, and whether it is ready for traffic.

Job: the stop sequence that a load balancer needs, as data. On SIGTERM the server

1. answers ``/readyz`` with 503 at once (:attr:`StopPhase.DELAYING`), while its workers keep
   accepting and serving as before, for ``--shutdown-delay`` seconds: time for the load
   balancer's health checks to see the 503 and stop sending new connections;
2. then stops accepting (:attr:`StopPhase.DRAINING`): the workers accept what already sits
   in the kernel's accept queue, close the listening sockets, and finish their in-flight
   requests within what is left of ``--graceful-timeout``.

The master and every worker compute the phase from the same two facts: when the stop was
requested and the delay, so nothing needs to be told twice. ``/readyz`` also answers 503
while fewer than ``--ready-min`` workers accept connections (starting, or a crash loop).

Must not: read clocks, sockets or shared memory (callers pass ``now`` and the facts).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StopPhase(enum.Enum):
    """Where the server is in its stop sequence."""

    SERVING = "serving"  # no stop requested
    DELAYING = "delaying"  # stop requested: not ready, still accepting (shutdown delay)
    DRAINING = "draining"  # not accepting any more: finishing in-flight requests


@dataclass(frozen=True)
class StopPlan:
    """A stop requested at ``requested_at`` (monotonic seconds) with ``delay`` seconds of
    shutdown delay; ``requested_at`` None: no stop requested."""

    delay: float = 0.0
    requested_at: float | None = None

    def phase(self, now: float) -> StopPhase:
        if self.requested_at is None:
            return StopPhase.SERVING
        if now < self.accept_until:
            return StopPhase.DELAYING
        return StopPhase.DRAINING

    @property
    def accept_until(self) -> float:
        """When the workers stop accepting (meaningful once a stop was requested)."""
        return (self.requested_at or 0.0) + self.delay

    def requested(self, now: float) -> StopPlan:
        """This plan once a stop is requested at ``now`` (a second request changes nothing)."""
        if self.requested_at is not None:
            return self
        return StopPlan(self.delay, now)


@dataclass(frozen=True)
class Readiness:
    """The answer to ``/readyz``."""

    ready: bool
    reason: str
    ready_workers: int
    ready_min: int
    phase: StopPhase

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not ready",
            "reason": self.reason,
            "phase": self.phase.value,
            "ready_workers": self.ready_workers,
            "ready_min": self.ready_min,
        }


def readiness(phase: StopPhase, ready_workers: int, ready_min: int) -> Readiness:
    """Ready: no stop requested and at least ``ready_min`` workers accept connections."""
    if phase is not StopPhase.SERVING:
        reason = "stopping"
    elif ready_workers < ready_min:
        reason = f"{ready_workers} of at least {ready_min} workers ready"
    else:
        reason = f"{ready_workers} workers ready"
    ready = phase is StopPhase.SERVING and ready_workers >= ready_min
    return Readiness(ready, reason, ready_workers, ready_min, phase)


def status_line(plan: StopPlan, now: float, in_flight: int) -> str:
    """The sd-notify ``STATUS=`` text for a stopping server."""
    phase = plan.phase(now)
    if phase is StopPhase.DELAYING:
        left = max(plan.accept_until - now, 0.0)
        return (
            f"stopping: not ready, still serving for {left:.1f}s "
            "(--shutdown-delay) so load balancers stop sending"
        )
    requests = "request" if in_flight == 1 else "requests"
    return f"stopping: listeners closed, finishing {in_flight} in-flight {requests}"
