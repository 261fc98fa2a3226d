"""Per-worker live statistics in shared memory: the scoreboard.

Job: one anonymous shared ``mmap``, created by the master BEFORE it forks any worker, cut
into fixed-size slots. A worker owns one slot and is its only writer (pid, status,
heartbeat, requests served, in flight, per-status-class counts and a latency histogram);
the master reads every slot for the health page, ``/metrics``, hung-worker detection and
recycling, and folds a reaped worker's counters into retired totals so that Prometheus
counters never go backwards.

Design:

* Single writer per slot. Between processes there is no lock. Single-word updates
  (heartbeat, in flight, status) are aligned 8-byte stores through a ``memoryview``, which
  a reader sees whole. The multi-word update at the end of a request is a seqlock (the
  writer makes the slot's sequence odd, stores, makes it even; a reader retries while it
  is odd or changed), so the master never sees "requests" and the histogram disagree on
  x86-64 (stores are not reordered there; on weaker memory models a rare torn read only
  shows numbers off by one request for one scrape).
* Inside a worker, request threads share the slot's writer, so :class:`SlotWriter` takes
  an (uncontended, ~50 ns) ``threading.Lock`` around each update.
* The master writes a slot only when no worker owns it: :meth:`Scoreboard.claim` before
  the fork, :meth:`Scoreboard.release` after the reap.
* Times are ``time.monotonic()`` values: CLOCK_MONOTONIC is one clock for every process
  of the host, so the master compares a worker's heartbeat with its own "now".

Must not: decide anything (recycling, hung workers: see ``_recycling``, ``_hung``), log,
or allocate per request beyond the packed write.
"""

from __future__ import annotations

import bisect
import enum
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Prometheus' default buckets (seconds); the last, implicit bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# A slot is 32 native 8-byte words (256 bytes, a multiple of the 64-byte cache line, so
# workers never share a line). Word indexes:
_SEQ, _PID, _GENERATION, _STARTED_AT, _HEARTBEAT, _REQUESTS, _IN_FLIGHT, _STATUS = range(8)
_LATENCY_SUM = 8
_CLASSES = 9
_BUCKETS = _CLASSES + len(STATUS_CLASSES)
_N_BUCKETS = len(LATENCY_BUCKETS) + 1  # +Inf last
_WORDS = 32
SLOT_SIZE = _WORDS * 8
_FLOAT_WORDS = (_STARTED_AT, _HEARTBEAT, _LATENCY_SUM)
_LAYOUT = struct.Struct("=" + "".join("d" if i in _FLOAT_WORDS else "q" for i in range(_WORDS)))
_READ_ATTEMPTS = 200
assert _BUCKETS + _N_BUCKETS <= _WORDS


class SlotStatus(enum.IntEnum):
    """Where a worker is in its life, as written in its slot."""

    EMPTY = 0
    BOOTING = 1  # forked, loading the app, not accepting yet
    READY = 2  # accepting connections
    DRAINING = 3  # retired: stopped accepting, finishing in-flight requests


@dataclass(frozen=True)
class SlotStats:
    """A consistent copy of one slot, as the master reads it."""

    index: int
    pid: int
    generation: int
    status: SlotStatus
    started_at: float
    last_heartbeat: float
    requests: int
    in_flight: int
    latency_sum: float
    status_classes: tuple[int, ...]
    buckets: tuple[int, ...]  # per bucket (not cumulative), +Inf last


@dataclass
class Totals:
    """Counters summed over workers (live and retired): what ``/metrics`` exports."""

    requests: int = 0
    latency_sum: float = 0.0
    status_classes: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * _N_BUCKETS)

    def add(self, stats: SlotStats) -> None:
        """Add one slot's counters."""
        self.requests += stats.requests
        self.latency_sum += stats.latency_sum
        for i, value in enumerate(stats.status_classes):
            self.status_classes[i] += value
        for i, value in enumerate(stats.buckets):
            self.buckets[i] += value

    def copy(self) -> Totals:
        """An independent copy."""
        return Totals(
            self.requests, self.latency_sum, list(self.status_classes), list(self.buckets)
        )


def _status_class_index(status_code: int) -> int:
    index = status_code // 100 - 1
    return index if 0 <= index < len(STATUS_CLASSES) else len(STATUS_CLASSES) - 1


class _Words:
    """Two typed views (int64 and float64) over the same shared words."""

    def __init__(self, buf: mmap.mmap) -> None:
        raw = memoryview(buf)
        self.ints = raw.cast("q")
        self.floats = raw.cast("d")
        raw.release()

    def release(self) -> None:
        self.ints.release()
        self.floats.release()


class SlotWriter:
    """The worker's handle on its own slot. Thread-safe; each method is a few word stores.

    Create it in the worker, after the fork, with :meth:`Scoreboard.writer`. Single-word
    updates (heartbeat, in flight + 1, status) are plain aligned stores; the multi-word
    update at the end of a request goes through the slot's seqlock.
    """

    def __init__(self, words: _Words, index: int, pid: int, clock: Callable[[], float]) -> None:
        self._ints = words.ints
        self._floats = words.floats
        self._base = index * _WORDS
        self._clock = clock
        self._lock = threading.Lock()
        with self._lock:
            self._ints[self._base + _PID] = pid
            self._floats[self._base + _HEARTBEAT] = clock()

    def set_status(self, status: SlotStatus) -> None:
        """Record a life-cycle step (READY when accepting, DRAINING when retired)."""
        with self._lock:
            self._ints[self._base + _STATUS] = int(status)
            self._floats[self._base + _HEARTBEAT] = self._clock()

    def heartbeat(self) -> None:
        """Tell the master this worker is alive (call it at least every ``timeout / 2``)."""
        self._floats[self._base + _HEARTBEAT] = self._clock()

    def request_started(self) -> None:
        """A request began: in flight + 1."""
        with self._lock:
            self._ints[self._base + _IN_FLIGHT] += 1

    def request_finished(self, duration: float, status_code: int) -> None:
        """A request ended after ``duration`` seconds with ``status_code`` (a heartbeat too)."""
        bucket = _BUCKETS + bisect.bisect_left(LATENCY_BUCKETS, duration)
        klass = _CLASSES + _status_class_index(status_code)
        base = self._base
        ints = self._ints
        with self._lock:
            ints[base + _SEQ] += 1  # odd: a reader retries
            ints[base + _REQUESTS] += 1
            ints[base + _IN_FLIGHT] -= 1
            ints[base + klass] += 1
            ints[base + bucket] += 1
            self._floats[base + _LATENCY_SUM] += duration
            self._floats[base + _HEARTBEAT] = self._clock()
            ints[base + _SEQ] += 1


def _read_raw(buf: mmap.mmap, ints: memoryview, index: int) -> bytes | None:
    """Copy the slot when it is not mid-update; None if it stayed mid-update.

    The sequence word is read on its own before and after the copy: a memcpy may load the
    words in any order, so the sequence inside the copy proves nothing. A writer can be
    preempted in the middle of an update for as long as the scheduler likes, so the
    caller falls back on the last good copy instead of spinning.
    """
    base = index * _WORDS
    offset = base * 8
    for _ in range(_READ_ATTEMPTS):
        before = ints[base + _SEQ]
        raw = buf[offset : offset + SLOT_SIZE]
        if not before & 1 and ints[base + _SEQ] == before:
            return raw
        os.sched_yield()
    return None


class Scoreboard:
    """The shared table of worker slots. Create in the master before forking.

    :param capacity: number of slots. It must cover the configured workers, the
        replacements a rollout starts at once (max surge), the workers still draining,
        and those SIGTTIN may add; :meth:`claim` raises when none is free.
    """

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            msg = f"'capacity' must be an int >= 1, not: {capacity!r} ({type(capacity).__name__})"
            raise ValueError(msg)
        self.capacity = capacity
        self._clock = clock
        self._buf = mmap.mmap(-1, capacity * SLOT_SIZE, flags=mmap.MAP_SHARED)
        self._words = _Words(self._buf)
        self._claimed: set[int] = set()
        self._last_good: dict[int, bytes] = {}
        self.retired = Totals()

    def close(self) -> None:
        """Unmap the table (master at exit; a worker may close its copy too)."""
        self._words.release()
        self._buf.close()

    # -- master side -------------------------------------------------------------------

    def claim(self, generation: int) -> int:
        """Reserve a free slot for a worker about to be forked; return its index.

        The slot is reset to BOOTING with ``started_at`` and the heartbeat set to now, so a
        worker that hangs while importing the app is caught by the boot timeout.
        """
        free = next((i for i in range(self.capacity) if i not in self._claimed), None)
        if free is None:
            msg = f"scoreboard full: all {self.capacity} slots are in use"
            raise RuntimeError(msg)
        self._claimed.add(free)
        now = self._clock()
        self._reset(free, generation=generation, status=SlotStatus.BOOTING, now=now)
        return free

    def release(self, index: int) -> SlotStats:
        """Free the slot of a reaped worker; its counters go to :attr:`retired`."""
        final = self.read(index)
        self.retired.add(final)
        self._reset(index, generation=0, status=SlotStatus.EMPTY, now=0.0)
        self._claimed.discard(index)
        return final

    def _reset(self, index: int, generation: int, status: SlotStatus, now: float) -> None:
        base = index * _WORDS
        ints, floats = self._words.ints, self._words.floats
        self._last_good.pop(index, None)
        ints[base + _SEQ] += 1 + (ints[base + _SEQ] & 1)
        for i in range(1, _WORDS):
            ints[base + i] = 0
        ints[base + _GENERATION] = generation
        ints[base + _STATUS] = int(status)
        floats[base + _STARTED_AT] = now
        floats[base + _HEARTBEAT] = now
        ints[base + _SEQ] += 1

    def read(self, index: int) -> SlotStats:
        """A consistent copy of slot ``index`` (the last one, if the writer is mid-update)."""
        raw = _read_raw(self._buf, self._words.ints, index)
        if raw is None:
            raw = (
                self._last_good.get(index)
                or self._buf[index * SLOT_SIZE : (index + 1) * SLOT_SIZE]
            )
        else:
            self._last_good[index] = raw
        v = _LAYOUT.unpack(raw)
        return SlotStats(
            index=index,
            pid=int(v[_PID]),
            generation=int(v[_GENERATION]),
            started_at=float(v[_STARTED_AT]),
            last_heartbeat=float(v[_HEARTBEAT]),
            requests=int(v[_REQUESTS]),
            in_flight=int(v[_IN_FLIGHT]),
            status=SlotStatus(int(v[_STATUS])),
            latency_sum=float(v[_LATENCY_SUM]),
            status_classes=tuple(int(x) for x in v[_CLASSES:_BUCKETS]),
            buckets=tuple(int(x) for x in v[_BUCKETS : _BUCKETS + _N_BUCKETS]),
        )

    def read_all(self) -> list[SlotStats]:
        """Every claimed slot, in index order."""
        return [self.read(i) for i in sorted(self._claimed)]

    def totals(self, live: Iterable[SlotStats] | None = None) -> Totals:
        """Retired counters plus the live slots' (read now unless given)."""
        result = self.retired.copy()
        for stats in self.read_all() if live is None else live:
            result.add(stats)
        return result

    # -- worker side -------------------------------------------------------------------

    def writer(self, index: int, pid: int | None = None) -> SlotWriter:
        """In the worker, after fork: the writer of slot ``index`` (records the pid)."""
        return SlotWriter(self._words, index, os.getpid() if pid is None else pid, self._clock)
