"""Worker side of recycling: notice that this worker is due, and ask the master once.

Job: hold this worker's own limits (drawn once, with jitter, by
:func:`~cotyledon.wsgi._recycling.draw_limits`), count the requests it finished, and wake
up only when something can have changed: after a request (max requests), at the age
deadline (max age), every ``memory_check_interval`` seconds when a memory limit is set
(its own USS from /proc). When a limit is passed it logs why and asks the master, over
the control channel, to *replace* it: the master forks the replacement and sends this
worker SIGTERM only once the replacement accepts connections, so nothing is refused.

Must not: stop the worker itself (the master decides, and may refuse, for example while
a replacement is being aborted), or wake up when no limit is set.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable

from cotyledon.wsgi import _memory
from cotyledon.wsgi._recycling import RecycleDecision, RecyclePolicy, draw_limits, maybe_recycle

LOG = logging.getLogger("cotyledon.wsgi.recycling")

Ask = Callable[[str], bool]


def ask_master(reason: str) -> bool:
    """Send the master a replacement request (False: not under a cotyledon master)."""
    from cotyledon import _control  # noqa: PLC0415 - the core's worker->master channel

    return _control.send_to_master("replace", reason)


class Recycler:
    """This worker's recycling limits and counters (thread-safe)."""

    def __init__(
        self,
        policy: RecyclePolicy,
        *,
        memory_check_interval: float = 5.0,
        ask: Ask = ask_master,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        measure: Callable[[], int | None] | None = None,
        name: str = "worker",
    ) -> None:
        self.limits = draw_limits(policy, rng or random.Random())
        self.enabled = policy.enabled
        self.requests = 0
        self.asked: RecycleDecision | None = None
        self._interval = memory_check_interval
        self._ask = ask
        self._clock = clock
        self._measure = measure or (lambda: _memory.memory_bytes(os.getpid()))
        self._name = name
        self._started = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the timer thread if an age or memory limit needs one."""
        if self.limits.max_age is None and self.limits.max_memory is None:
            return
        self._thread = threading.Thread(target=self._watch, name="recycler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def request_done(self) -> None:
        """Count a finished request (called from the request threads)."""
        limit = self.limits.max_requests
        with self._lock:
            self.requests += 1
            due = limit is not None and self.requests >= limit
        if due:
            self.check()

    def check(self, memory: int | None = None) -> RecycleDecision | None:
        """Ask for a replacement if a limit is passed (once); returns the decision."""
        with self._lock:
            if self.asked is not None:
                return None
            decision = maybe_recycle(
                self.limits,
                requests_served=self.requests,
                age=self._clock() - self._started,
                memory=memory,
            )
            if decision is None:
                return None
            self.asked = decision
        LOG.info("%s (pid %d) is due for recycling: %s", self._name, os.getpid(), decision.detail)
        if not self._ask(f"{decision.reason.value}: {decision.detail}"):
            LOG.warning("%s: no master to ask for a replacement; serving on", self._name)
        return decision

    def _next_wait(self) -> float | None:
        waits = []
        if self.limits.max_age is not None:
            waits.append(self._started + self.limits.max_age - self._clock())
        if self.limits.max_memory is not None:
            waits.append(self._interval)
        return max(min(waits), 0.0) if waits else None

    def _watch(self) -> None:
        while self.asked is None:
            wait = self._next_wait()
            if wait is None or self._stop.wait(wait):
                return
            memory = self._measure() if self.limits.max_memory is not None else None
            self.check(memory)
