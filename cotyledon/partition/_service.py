"""``PartitionedService``: a Service whose workers split keys with every other worker of the
group, on every host, through tooz group membership and a consistent hash ring.

Job: the driver. Connect to the coordination backend (bounded retries), join the group,
heartbeat and refresh the membership in a futurist periodic worker, feed the facts to the
pure :mod:`cotyledon.partition._ownership` and log its decisions, call ``on_rebalance``,
leave the group on terminate.

Must not: decide ownership itself, or run anything in the master (all of this happens in
the worker, after the fork; the master never imports this package).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar

from futurist import periodics
from tooz import coordination

import cotyledon
from cotyledon.partition import _backends, _url
from cotyledon.partition._ownership import Ownership, Standing, Status, View

LOG = logging.getLogger("cotyledon.partition")

K = TypeVar("K")

#: Exit status of a worker that could not join its group at start (the master respawns it
#: within its restart budget, as for any other failed start).
EXIT_START_FAILED = 2


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PartitionedService(cotyledon.Service):
    """A service whose workers, on every host, share keys through a tooz group.

    Subclasses call ``super().__init__(worker_id, coordination_url, group, lease=...,
    heartbeat=...)`` and ask :meth:`owns` (or :meth:`owned`) before working on a key.
    Each worker is one member of the group; keys are spread over the members by a
    consistent hash ring (tooz's), in proportion to their ``weight``. A worker claims no
    key during its first lease in the group, and none while its heartbeat or membership
    view is older than the lease: two live members never both claim a key.

    If you override :meth:`terminate`, call ``super().terminate()`` first: it stops
    claiming and leaves the group, so the other members take the keys over at once.

    :param worker_id: the worker's number (given by the manager).
    :param coordination_url: a tooz URL, e.g. ``redis://10.0.0.5:6379`` or
        ``file:///var/lib/app/coord`` (one host only).
    :param group: the group name; every worker of every host sharing the keys uses it.
    :param lease: seconds a member stays in the group without heartbeat.
    :param heartbeat: seconds between heartbeats (and membership refreshes); below
        ``lease``, a third of it or less is a good choice.
    :param weight: this worker's share of keys relative to the others (integer >= 1).
    """

    #: Connection attempts at start before the worker gives up (exit status 2).
    start_attempts: ClassVar[int] = 5

    def __init__(
        self,
        worker_id: int,
        coordination_url: str,
        group: str,
        *,
        lease: float = 10.0,
        heartbeat: float = 1.0,
        weight: int = 1,
    ) -> None:
        super().__init__(worker_id)
        _check_arguments(group, lease, heartbeat, weight)
        self._group = group.encode()
        self._heartbeat = float(heartbeat)
        self._weight = weight
        self._clock: Callable[[], float] = time.monotonic
        me = _url.member_id(socket.gethostname(), os.getppid(), str(self.name), worker_id)
        self._state = Ownership(me, float(lease))
        self._weights: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._leaving = False
        self._status: Status | None = None
        self._signature: object = None
        self._coordinator = self._connect(coordination_url)
        self._periodic = periodics.PeriodicWorker([(self._make_tick(), None, None)])
        threading.Thread(target=self._periodic.start, name="partition", daemon=True).start()

    # -- public API ------------------------------------------------------------------

    @property
    def member_id(self) -> str:
        """This worker's id in the group: ``host:master_pid:service:worker_id``."""
        return self._state.me

    def owns(self, key: object) -> bool:
        """True when this worker may work on ``key`` now (str, bytes or anything ``str()``
        gives a stable value for). False while the backend is unreachable."""
        return self._state.owns(key, self._clock())

    def owned(self, keys: Iterable[K]) -> list[K]:
        """The keys among ``keys`` this worker owns now, in their order."""
        return self._state.owned(keys, self._clock())

    def members(self) -> list[str]:
        """The member ids of the group as last seen (sorted)."""
        return self._state.members()

    def on_rebalance(self) -> None:
        """Hook: called in the worker (partition thread) when the members or our claiming
        status change. The default does nothing; ask :meth:`owned` again here."""

    def terminate(self) -> None:
        """Stop claiming keys, leave the group and disconnect."""
        self._leave()

    # -- start -----------------------------------------------------------------------

    def _connect(self, url: str) -> coordination.CoordinationDriver:
        """Connect and join with bounded retries, or log one line and exit."""
        try:
            scheme = _url.check_url(url, _backends.installed())
            options = _backends.options(scheme, url, self._state.lease, self._heartbeat)
        except _url.CoordinationURLError as exc:
            LOG.error("%s: %s", self.member_id, exc)  # one line, no traceback
            raise SystemExit(EXIT_START_FAILED) from None
        shown = _url.redact(url)
        delays = _url.backoff(self.start_attempts, 0.1, self._heartbeat)
        reason = ""
        for attempt in range(self.start_attempts):
            try:
                coordinator = coordination.get_coordinator(url, self.member_id.encode(), **options)
                _backends.fail_fast(coordinator)
            except (ValueError, TypeError, RuntimeError) as exc:
                LOG.error("%s: bad coordination URL %r: %s", self.member_id, shown, _reason(exc))
                raise SystemExit(EXIT_START_FAILED) from None
            try:
                coordinator.start()
                started = self._clock()
                self._join(coordinator)
                # tooz's watchers only log joins and leaves: ownership reads get_members().
                coordinator.watch_join_group(self._group, self._on_member_joined)
                coordinator.watch_leave_group(self._group, self._on_member_left)
            except Exception as exc:  # any failure of the backend is retried
                reason = _reason(exc)
                with contextlib.suppress(Exception):
                    coordinator.stop()
                if attempt < len(delays):
                    time.sleep(delays[attempt])
                continue
            self._state = self._state.with_join(started, self._clock())
            LOG.info(
                "%s joined partition group %r at %s", self.member_id, self._group.decode(), shown
            )
            return coordinator
        LOG.error(
            "%s: cannot join partition group %r at %s after %d attempts: %s",
            self.member_id,
            self._group.decode(),
            shown,
            self.start_attempts,
            reason,
        )
        raise SystemExit(EXIT_START_FAILED)

    def _join(self, coordinator: coordination.CoordinationDriver) -> None:
        with contextlib.suppress(coordination.GroupAlreadyExist):
            coordinator.create_group(self._group).get()
        with contextlib.suppress(coordination.MemberAlreadyExist):
            coordinator.join_group(self._group, {"weight": self._weight}).get()

    def _on_member_joined(self, event: coordination.MemberJoinedGroup) -> None:
        LOG.info("%s: member %s joined", self.member_id, event.member_id.decode(errors="replace"))

    def _on_member_left(self, event: coordination.MemberLeftGroup) -> None:
        LOG.info("%s: member %s left", self.member_id, event.member_id.decode(errors="replace"))

    # -- periodic work ---------------------------------------------------------------

    def _make_tick(self) -> Callable[[], None]:
        @periodics.periodic(self._heartbeat, run_immediately=True)
        def tick() -> None:
            self._tick()

        return tick

    def _tick(self) -> None:
        """Heartbeat, refresh the membership, run tooz's watchers; then report."""
        clock = self._clock
        with self._lock:
            if self._leaving:
                return
            state = self._state
            try:
                if state.needs_join(clock()):
                    started = clock()
                    self._join(self._coordinator)
                    state = self._state = state.with_join(started, clock())
                started = clock()
                self._coordinator.heartbeat()
                state = self._state = state.with_heartbeat(started, clock())
                started = clock()
                members = self._fetch_members()
                state = self._state = state.with_view(View(members, started))
            except Exception as exc:  # the backend failed: record why
                state = self._state = state.with_fault(_reason(exc))
            else:
                try:
                    self._coordinator.run_watchers()
                except Exception as exc:  # logging joins is not essential
                    LOG.debug("%s: watchers failed: %s", self.member_id, _reason(exc))
        self._report(state)

    def _fetch_members(self) -> dict[str, int]:
        try:
            ids = self._coordinator.get_members(self._group).get()
        except coordination.GroupNotCreated:
            return {}  # the backend lost the group (restarted empty): nobody is in it
        members: dict[str, int] = {}
        for member in ids:
            if member not in self._weights:
                try:
                    caps = self._coordinator.get_member_capabilities(self._group, member).get()
                except coordination.MemberNotJoined:
                    continue  # left between the two requests
                weight = caps.get("weight", 1) if isinstance(caps, dict) else 1
                self._weights[member] = int(weight)
            members[member.decode(errors="replace")] = self._weights[member]
        # Forget members that left (ids hold a pid: restarts make new ones).
        self._weights = {m: w for m, w in self._weights.items() if m in ids}
        return members

    def _report(self, state: Ownership) -> None:
        """Log standing changes once each; call on_rebalance when anything changed."""
        status = state.status(self._clock())
        previous, self._status = self._status, status
        if previous is None or previous.standing is not status.standing:
            if status.standing is Standing.LOST:
                LOG.warning("%s stopped claiming keys: %s", self.member_id, status.reason)
            elif status.standing is Standing.CLAIMING:
                LOG.info("%s claiming keys (%d members)", self.member_id, len(state.members()))
            else:
                LOG.debug("%s not claiming yet: %s", self.member_id, status.reason)
        view = state.view.members if state.view is not None else {}
        signature = (status.claiming, frozenset(view.items()))
        if signature != self._signature:
            self._signature = signature
            try:
                self.on_rebalance()
            except Exception:
                LOG.exception("%s: on_rebalance() failed", self.member_id)

    # -- stop ------------------------------------------------------------------------

    def _leave(self) -> None:
        with self._lock:
            if self._leaving:
                return
            self._leaving = True
            self._state = self._state.with_leave()
        self._periodic.stop()
        try:
            self._coordinator.leave_group(self._group).get()
            LOG.info("%s left partition group %r", self.member_id, self._group.decode())
        except Exception as exc:  # the backend drops us after the lease
            LOG.warning("%s could not leave the group: %s", self.member_id, _reason(exc))
        with contextlib.suppress(Exception):
            self._coordinator.stop()


def _check_arguments(group: str, lease: float, heartbeat: float, weight: int) -> None:
    if not isinstance(group, str) or not group:
        raise ValueError(f"'group' must be a non-empty str, not: {group!r}")
    for name, value in (("lease", lease), ("heartbeat", heartbeat)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"'{name}' must be a number of seconds > 0, not: {value!r}")
    if heartbeat >= lease:
        raise ValueError(
            f"'heartbeat' ({heartbeat!r}) must be shorter than 'lease' ({lease!r}); "
            "a third of it or less leaves room for a late heartbeat"
        )
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ValueError(f"'weight' must be an int >= 1, not: {weight!r}")
