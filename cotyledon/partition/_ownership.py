"""Which keys this member may claim, decided from facts and the current time (PURE).

Job: given our member id, the lease, when we joined, when our last good heartbeat and our
last membership view started, and that view (members with their weights), answer "do we
own this key now?" and "are we claiming at all, and if not, why?".

Must not: do I/O, read a clock or log. The driver (:mod:`cotyledon.partition._service`)
feeds the facts and the time in and logs what comes out.

Safety argument (why two live members never both claim a key). Member X claims at time
``t`` only when all of these hold:

1. X joined at least one lease ago, and has been a member continuously since (every
   heartbeat *completed* less than a lease after the previous one was sent; otherwise the
   backend may have dropped X for a while, and X settles again as if it had just joined);
2. X's view of the membership was fetched less than a lease ago, and X is in it;
3. X's last good heartbeat started less than a lease ago (the backend keeps a member for a
   lease after it *received* the heartbeat, so X stops claiming before the backend drops it).

Take X and Y both claiming ``k`` at ``t``, with views V (fetched at ``v > t - lease``) and
W. Y joined at ``j <= t - lease < v`` and was still a member at ``v`` (3.), so Y is in V;
likewise X is in W. On a consistent hash ring a member's points depend only on its id and
weight, so among members present in both views the one whose point comes first for ``k``
is the same in V and W: X and Y cannot both be it. A newcomer Z does not break this: it
claims nothing during its first lease, and by then every claiming member's view (less
than a lease old) includes it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from tooz import hashring

K = TypeVar("K")

#: Points per unit of weight on the ring (tooz's default for its partitioner).
PARTITIONS = 32

#: Keys whose owner is remembered per ring (lookups hash with md5; workers ask often).
OWNER_CACHE_SIZE = 100_000


def key_bytes(key: object) -> bytes:
    """The bytes a key is hashed from: bytes as they are, anything else as ``str(key)``."""
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    return str(key).encode("utf-8")


@dataclass(frozen=True)
class View:
    """The group's members (id -> weight) as fetched by a request started at ``fetched_at``."""

    members: Mapping[str, int]
    fetched_at: float


class Standing(enum.Enum):
    """Whether we claim keys: CLAIMING, SETTLING (just joined, waiting a lease) or LOST."""

    CLAIMING = "claiming"
    SETTLING = "settling"
    LOST = "lost"


@dataclass(frozen=True)
class Status:
    standing: Standing
    reason: str = ""

    @property
    def claiming(self) -> bool:
        return self.standing is Standing.CLAIMING


@dataclass(frozen=True)
class Ownership:
    """Immutable facts about one member; every ``with_*`` method returns a new one.

    :param me: our member id.
    :param lease: seconds the backend keeps a member after its last heartbeat.
    """

    me: str
    lease: float
    joined_at: float | None = None
    heartbeat_at: float | None = None
    view: View | None = None
    fault: str = ""
    _ring: hashring.HashRing | None = field(default=None, compare=False, repr=False)
    # key bytes -> owner, for the current ring only (a new view gets a new ring and cache).
    _owners: dict[bytes, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.lease <= 0:
            raise ValueError(f"'lease' must be > 0 seconds, not: {self.lease!r}")

    # -- facts in --------------------------------------------------------------------

    def with_join(self, started_at: float, now: float) -> Ownership:
        """We (re)joined the group with a request sent at ``started_at`` that returned at
        ``now`` (the backend counts our lease from somewhere in between)."""
        return dataclasses.replace(self, joined_at=now, heartbeat_at=started_at, fault="")

    def with_heartbeat(self, started_at: float, now: float) -> Ownership:
        """A heartbeat sent at ``started_at`` succeeded; its answer came at ``now``.

        If it completed a lease or more after the previous one was sent, the backend may
        have dropped us in between (and let it resurrect us): our membership was not
        continuous, so we settle again as if we had just joined."""
        if self.heartbeat_at is not None and now - self.heartbeat_at >= self.lease:
            return dataclasses.replace(self, heartbeat_at=started_at, joined_at=now)
        return dataclasses.replace(self, heartbeat_at=started_at)

    def with_view(self, view: View) -> Ownership:
        """A membership fetch succeeded."""
        same = self.view is not None and self.view.members == view.members
        if same:
            return dataclasses.replace(self, view=view, fault="", _owners=self._owners)
        ring = build_ring(view.members)
        return dataclasses.replace(self, view=view, fault="", _ring=ring, _owners={})

    def with_fault(self, reason: str) -> Ownership:
        """A backend request failed; ``reason`` says how (kept for the log line)."""
        return dataclasses.replace(self, fault=reason)

    def with_leave(self) -> Ownership:
        """We left (or are leaving) the group: claim nothing from now on."""
        return dataclasses.replace(self, joined_at=None, fault="left the group")

    # -- decisions out ---------------------------------------------------------------

    def needs_join(self, now: float) -> bool:
        """True when our membership may be gone: never joined, heartbeat lapsed, or the
        last view (fetched after we joined) does not list us."""
        if self.joined_at is None or self.heartbeat_at is None:
            return True
        if now - self.heartbeat_at >= self.lease:
            return True
        view = self.view
        return (
            view is not None and view.fetched_at > self.joined_at and self.me not in view.members
        )

    def status(self, now: float) -> Status:
        """Whether we claim keys at ``now``, and if not, why."""
        lost = self._lost_reason(now)
        if lost:
            return Status(Standing.LOST, lost)
        assert self.joined_at is not None
        view = self.view
        if now - self.joined_at < self.lease:
            return Status(Standing.SETTLING, f"joined less than one lease ({self.lease:g}s) ago")
        if view is None or view.fetched_at <= self.joined_at:
            return Status(Standing.SETTLING, "no membership view since joining")
        return Status(Standing.CLAIMING)

    def _lost_reason(self, now: float) -> str:
        """Why we must not claim at ``now`` even after settling ("" when nothing is wrong)."""
        if self.joined_at is None or self.heartbeat_at is None:
            return self.fault or "not a member of the group"
        if now - self.heartbeat_at >= self.lease:
            return self._late("no successful heartbeat", now - self.heartbeat_at)
        view = self.view
        if view is None or view.fetched_at <= self.joined_at:
            return ""
        if self.me not in view.members:
            return "our membership vanished from the group"
        if now - view.fetched_at >= self.lease:
            return self._late("membership not refreshed", now - view.fetched_at)
        return ""

    def _late(self, what: str, age: float) -> str:
        cause = f": {self.fault}" if self.fault else ""
        return f"{what} for {age:.1f}s (lease {self.lease:g}s){cause}"

    def owner(self, key: object) -> str | None:
        """The member the last view maps ``key`` to (None without a view or members)."""
        if self._ring is None or not len(self._ring):
            return None
        data = key_bytes(key)
        owner = self._owners.get(data)
        if owner is None:
            if len(self._owners) >= OWNER_CACHE_SIZE:
                self._owners.clear()
            (node,) = self._ring.get_nodes(data)
            owner = self._owners[data] = str(node)
        return owner

    def owns(self, key: object, now: float) -> bool:
        """True when we claim keys at ``now`` and ``key`` maps to us."""
        return self.status(now).claiming and self.owner(key) == self.me

    def owned(self, keys: Iterable[K], now: float) -> list[K]:
        """The keys among ``keys`` that we own at ``now``, in their order."""
        if not self.status(now).claiming:
            return []
        return [k for k in keys if self.owner(k) == self.me]

    def members(self) -> list[str]:
        """Member ids of the last view, sorted."""
        return sorted(self.view.members) if self.view is not None else []


def build_ring(members: Mapping[str, int]) -> hashring.HashRing:
    """A tooz hash ring with each member placed ``PARTITIONS * weight`` times."""
    ring = hashring.HashRing([], partitions=PARTITIONS)
    for member, weight in sorted(members.items()):
        ring.add_node(member, weight=weight)
    return ring
