"""When a request body that is still arriving must be given up: the body deadline.

Job: keep the bookkeeping of one request body being received (when it started, bytes so
far, when the last ones came) and say when it expires. Three limits, the earliest wins:

* ``idle``: no byte for that long (the per-read wait, ``--header-timeout``);
* ``total``: the whole body must have arrived that long after its head
  (``--body-timeout``, 0: no total limit);
* ``min_rate``: after a grace of ``idle`` seconds, the body must keep an average of at
  least ``min_rate`` bytes per second (``--body-min-rate``, 0: no rate limit). Each
  ``min_rate`` bytes received buy one more second, like Apache's ``mod_reqtimeout``
  ``MinRate``: a client dripping one byte every few seconds is cut off after the grace,
  a slow but steady upload is not.

Only time spent waiting for the client counts: while the app works between two reads
of the body the deadline is paused (:meth:`BodyDeadline.pause`), so a slow app never makes
a client late (nor does an app that reads a ``100-continue`` body only after a while).

The answer to an expired body is ``408 Request Timeout`` (the driver sends it).

Must not: read sockets, call ``time`` (the caller passes ``now``), log.
"""

from __future__ import annotations

import math


class BodyDeadline:
    """The deadline of one request body (see the module docstring); times are seconds."""

    __slots__ = ("_last", "_min_rate", "_paused_at", "_start", "_total", "idle", "received")

    def __init__(self, start: float, *, idle: float, total: float = 0.0, min_rate: float = 0.0):
        self._start = start
        self._last = start
        self.idle = idle
        self._total = total
        self._min_rate = min_rate
        self.received = 0
        self._paused_at: float | None = None

    def add(self, count: int, now: float) -> None:
        """``count`` bytes of the body (framing included) arrived at ``now``."""
        if count > 0:
            self.received += count
            self._last = max(self._last, now)

    def pause(self, now: float) -> None:
        """Stop the clock: from ``now`` the server, not the client, is the one not reading."""
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        """Start the clock again (the time paused is not counted)."""
        if self._paused_at is not None:
            shift = max(now - self._paused_at, 0.0)
            self._start += shift
            self._last += shift
            self._paused_at = None

    def expires_at(self) -> float:
        """When the body expires if nothing more arrives (never while paused)."""
        if self._paused_at is not None:
            return math.inf
        when = self._last + self.idle
        if self._total > 0:
            when = min(when, self._start + self._total)
        if self._min_rate > 0:
            when = min(when, self._start + self.idle + self.received / self._min_rate)
        return when

    def remaining(self, now: float) -> float:
        """Seconds left at ``now`` (0 once expired)."""
        left = self.expires_at() - now
        return left if left > 0 else 0.0

    def expired(self, now: float) -> bool:
        return now >= self.expires_at()
