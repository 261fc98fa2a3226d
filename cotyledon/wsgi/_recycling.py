"""When should a worker be recycled? Max requests, max age, max memory (PURE).

Job: turn a :class:`RecyclePolicy` (the configured limits) into one worker's own limits,
with jitter drawn once per worker so that workers started together do not all recycle
together, and decide from that worker's counters whether it is due, and why.

Must not: read clocks, /proc or the scoreboard, send signals or log. The caller measures
(age, requests served, memory) and acts on the returned :class:`RecycleDecision` by
asking the rollout for a replacement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class RecycleReason(enum.Enum):
    """Why a worker is recycled; the value is the label used in logs and metrics."""

    MAX_REQUESTS = "max_requests"
    MAX_AGE = "max_age"
    MAX_MEMORY = "max_memory"


class Random(Protocol):
    """The part of :class:`random.Random` the jitter needs (inject a seeded one in tests)."""

    def randint(self, a: int, b: int) -> int: ...

    def uniform(self, a: float, b: float) -> float: ...


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        msg = f"'{name}' must be a number >= 0, not: {value!r} ({type(value).__name__})"
        raise ValueError(msg)


@dataclass(frozen=True)
class RecyclePolicy:
    """The configured limits; 0 disables a limit.

    :param max_requests: recycle after this many requests (``--max-requests``).
    :param max_requests_jitter: add 0..N requests, drawn per worker
        (``--max-requests-jitter``).
    :param max_age: recycle after this many seconds (``--max-age``).
    :param max_age_jitter: add 0..N seconds, drawn per worker (``--max-age-jitter``).
    :param max_memory: recycle when the worker's own memory passes this many bytes
        (``--max-memory``; measured as RSS or USS, see :mod:`cotyledon.wsgi._memory`).
    """

    max_requests: int = 0
    max_requests_jitter: int = 0
    max_age: float = 0.0
    max_age_jitter: float = 0.0
    max_memory: int = 0

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_requests_jitter", "max_memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"'{name}' must be an int >= 0, not: {value!r} ({type(value).__name__})"
                raise ValueError(msg)
        for name in ("max_age", "max_age_jitter"):
            _check_non_negative(name, getattr(self, name))

    @property
    def enabled(self) -> bool:
        """True when at least one limit is set."""
        return bool(self.max_requests or self.max_age or self.max_memory)


@dataclass(frozen=True)
class WorkerLimits:
    """One worker's limits, jitter included; ``None`` means no limit."""

    max_requests: int | None = None
    max_age: float | None = None
    max_memory: int | None = None


@dataclass(frozen=True)
class RecycleDecision:
    """A worker is due for recycling: why, and a short human detail for the log line."""

    reason: RecycleReason
    detail: str


def draw_limits(policy: RecyclePolicy, rng: Random) -> WorkerLimits:
    """Draw one worker's limits: each jitter is uniform in ``[0, jitter]``.

    Jitter only applies to a limit that is set: a jitter alone does not recycle.
    """
    max_requests = None
    if policy.max_requests:
        extra = rng.randint(0, policy.max_requests_jitter) if policy.max_requests_jitter else 0
        max_requests = policy.max_requests + extra
    max_age = None
    if policy.max_age:
        extra_age = rng.uniform(0.0, policy.max_age_jitter) if policy.max_age_jitter else 0.0
        max_age = policy.max_age + extra_age
    return WorkerLimits(
        max_requests=max_requests,
        max_age=max_age,
        max_memory=policy.max_memory or None,
    )


def maybe_recycle(
    limits: WorkerLimits,
    *,
    requests_served: int,
    age: float,
    memory: int | None,
) -> RecycleDecision | None:
    """Return why the worker is due for recycling, or None.

    :param requests_served: requests this worker has finished.
    :param age: seconds since the worker started (monotonic clock).
    :param memory: the worker's own memory in bytes, or None when it could not be measured
        (an unmeasurable worker is never recycled for memory).

    When several limits are passed, memory wins (it is the one that hurts the host), then
    requests, then age.
    """
    if limits.max_memory is not None and memory is not None and memory > limits.max_memory:
        return RecycleDecision(
            RecycleReason.MAX_MEMORY,
            f"memory {_mib(memory)} > limit {_mib(limits.max_memory)}",
        )
    if limits.max_requests is not None and requests_served >= limits.max_requests:
        return RecycleDecision(
            RecycleReason.MAX_REQUESTS,
            f"served {requests_served} requests >= limit {limits.max_requests}",
        )
    if limits.max_age is not None and age >= limits.max_age:
        return RecycleDecision(
            RecycleReason.MAX_AGE,
            f"age {age:.1f}s >= limit {limits.max_age:.1f}s",
        )
    return None


def _mib(value: int) -> str:
    return f"{value / (1024 * 1024):.1f} MiB"
