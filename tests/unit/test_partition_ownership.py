"""The pure ownership logic of cotyledon.partition over a fake membership and a fake clock."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

pytest.importorskip("tooz", reason="cotyledon[partition] (tooz) is not installed")

from hypothesis import given, settings
from hypothesis import strategies as st

from cotyledon.partition._ownership import Ownership, Standing, View, key_bytes

LEASE = 3.0
KEYS = [f"key-{i}" for i in range(500)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def settled(me: str, members: dict[str, int], clock: FakeClock) -> Ownership:
    """A member that joined, then heartbeat every third of a lease for one lease: claiming."""
    state = Ownership(me, LEASE).with_join(clock(), clock())
    for _ in range(3):
        clock.advance(LEASE / 3)
        state = state.with_heartbeat(clock(), clock())
    return state.with_view(View(members, clock()))


def test_not_joined_claims_nothing() -> None:
    state = Ownership("a", LEASE)
    status = state.status(0.0)
    assert status.standing is Standing.LOST
    assert status.reason == "not a member of the group"
    assert state.needs_join(0.0)
    assert not state.owns("k", 0.0)
    assert state.owned(KEYS, 0.0) == []


def test_newcomer_claims_only_after_one_lease() -> None:
    clock = FakeClock()
    state = Ownership("a", LEASE).with_join(clock(), clock())
    state = state.with_view(View({"a": 1}, clock()))
    assert state.status(clock()).standing is Standing.SETTLING
    assert not state.owns("k", clock())
    clock.advance(LEASE - 0.01)
    state = state.with_heartbeat(clock(), clock()).with_view(View({"a": 1}, clock()))
    assert not state.owns("k", clock())
    clock.advance(0.01)
    assert state.status(clock()).claiming
    assert state.owned(KEYS, clock()) == KEYS  # alone in the group: every key


def test_no_view_since_joining_is_still_settling() -> None:
    clock = FakeClock()
    state = Ownership("a", LEASE).with_view(View({"a": 1}, clock()))
    clock.advance(0.1)
    state = state.with_join(clock(), clock())
    for _ in range(3):
        clock.advance(LEASE / 3)
        state = state.with_heartbeat(clock(), clock())
    status = state.status(clock())
    assert status.standing is Standing.SETTLING
    assert status.reason == "no membership view since joining"


def test_heartbeat_older_than_lease_stops_claiming_with_the_reason() -> None:
    clock = FakeClock()
    state = settled("a", {"a": 1}, clock)
    assert state.owns("k", clock())
    state = state.with_fault("ToozConnectionError: Connection refused")
    clock.advance(LEASE - 0.01)
    assert state.owns("k", clock())  # within the lease the backend still lists us
    clock.advance(0.01)
    status = state.status(clock())
    assert status.standing is Standing.LOST
    assert status.reason == (
        "no successful heartbeat for 3.0s (lease 3s): ToozConnectionError: Connection refused"
    )
    assert not state.owns("k", clock())
    assert state.needs_join(clock())


def test_stale_view_stops_claiming() -> None:
    clock = FakeClock()
    state = settled("a", {"a": 1}, clock)
    for _ in range(3):  # heartbeats keep succeeding but the view is not refreshed
        clock.advance(LEASE / 3)
        state = state.with_heartbeat(clock(), clock())
    status = state.status(clock())
    assert status.standing is Standing.LOST
    assert status.reason.startswith("membership not refreshed for 3.0s")
    assert not state.needs_join(clock())


def test_vanished_membership_stops_claiming_and_asks_to_rejoin() -> None:
    clock = FakeClock()
    state = settled("a", {"a": 1, "b": 1}, clock)
    clock.advance(0.5)
    state = state.with_heartbeat(clock(), clock()).with_view(View({"b": 1}, clock()))
    assert state.status(clock()).reason == "our membership vanished from the group"
    assert state.needs_join(clock())
    state = state.with_join(clock(), clock())  # rejoining restarts the settling lease
    assert state.status(clock()).standing is Standing.SETTLING


def test_late_heartbeat_means_settling_again() -> None:
    """A heartbeat that completes a lease after the previous one was sent: the backend may
    have dropped us meanwhile (and resurrected us), so we settle again."""
    clock = FakeClock()
    state = settled("a", {"a": 1}, clock)
    sent = clock.advance(LEASE / 2)
    state = state.with_heartbeat(sent, clock.advance(LEASE / 2))
    status = state.status(clock())
    assert status.standing is Standing.SETTLING
    assert not state.owns("k", clock())


def test_leaving_stops_claiming_at_once() -> None:
    clock = FakeClock()
    state = settled("a", {"a": 1}, clock).with_leave()
    assert state.status(clock()).reason == "left the group"
    assert not state.owns("k", clock())


def test_members_and_owner() -> None:
    clock = FakeClock()
    state = settled("b", {"b": 1, "a": 2}, clock)
    assert state.members() == ["a", "b"]
    assert {state.owner(k) for k in KEYS} == {"a", "b"}
    assert Ownership("x", LEASE).owner("k") is None


def test_same_view_keeps_the_ring() -> None:
    clock = FakeClock()
    state = settled("a", {"a": 1, "b": 1}, clock)
    again = state.with_view(View({"a": 1, "b": 1}, clock.advance(1)))
    assert again._ring is state._ring
    other = again.with_view(View({"a": 1}, clock()))
    assert other._ring is not state._ring


def test_key_bytes() -> None:
    assert key_bytes(b"k") == b"k"
    assert key_bytes("k") == b"k"
    assert key_bytes(42) == b"42"


def test_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="'lease' must be > 0 seconds, not: 0"):
        Ownership("a", 0)


def owners(members: dict[str, int]) -> Counter[str]:
    """How many of 4,000 keys each member owns when all share the view ``members``."""
    clock = FakeClock()
    states = {m: Ownership(m, LEASE).with_join(clock(), clock()) for m in members}
    for _ in range(3):
        now = clock.advance(LEASE / 3)
        states = {m: s.with_heartbeat(now, now) for m, s in states.items()}
    states = {m: s.with_view(View(members, now)) for m, s in states.items()}
    counts: Counter[str] = Counter()
    for i in range(4000):
        claimers = [m for m, s in states.items() if s.owns(f"k{i}", now)]
        assert len(claimers) == 1, (i, claimers)
        counts[claimers[0]] += 1
    return counts


def test_same_view_every_key_exactly_once_and_weights_are_honoured() -> None:
    counts = owners({"light": 1, "heavy": 3})
    assert 0.6 < counts["heavy"] / 4000 < 0.9  # 3/4 expected; a ring is not exact
    counts = owners({f"m{i}": 1 for i in range(6)})
    assert min(counts.values()) > 300  # each of 6 gets a share (667 expected)


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.sampled_from([f"m{i}" for i in range(8)]), min_size=2, max_size=8),
    st.data(),
)
def test_members_in_both_views_never_both_own_a_key(universe: set[str], data) -> None:  # type: ignore[no-untyped-def]
    """The ring property the safety argument rests on: if X and Y are in both views V and
    W, no key maps to X in V and to Y in W, whatever else differs between the views."""
    ordered = sorted(universe)
    x, y = ordered[0], ordered[1]
    others = ordered[2:]
    v = {x, y} | set(data.draw(st.lists(st.sampled_from(others or [x]))))
    w = {x, y} | set(data.draw(st.lists(st.sampled_from(others or [x]))))
    weights = {m: 1 + (sum(map(ord, m)) % 3) for m in universe}
    clock = FakeClock()
    in_v = settled(x, {m: weights[m] for m in v}, clock)
    in_w = settled(y, {m: weights[m] for m in w}, clock)
    for key in KEYS:
        assert not (in_v.owns(key, clock()) and in_w.owns(key, clock())), key


# -- a simulated group: joins, graceful leaves, crashes, outages, stale views ----------


@dataclass
class Member:
    name: str
    state: Ownership
    alive: bool = True
    cut_off: bool = False  # cannot reach the backend
    next_tick: float = 0.0


@dataclass
class Backend:
    """The group as a tooz backend keeps it: members joined, and when each one's heartbeat
    expires. Like Redis, a heartbeat after expiry resurrects a member still in the group;
    a restart forgets everything."""

    group: set[str] = field(default_factory=set)
    beats: dict[str, float] = field(default_factory=dict)

    def members(self, now: float) -> dict[str, int]:
        return {m: 1 for m in self.group if self.beats.get(m, 0) > now}


def simulate(seed: int, heartbeat: float = 0.5, steps: int = 1200) -> list[str]:
    """Run a random schedule on a fake clock; return the double claims seen."""
    rng = random.Random(seed)
    clock = FakeClock()
    backend = Backend()
    members: list[Member] = []
    keys = KEYS[:60]
    problems = []

    def tick(member: Member, now: float) -> None:
        state = member.state
        if member.cut_off:
            member.state = state.with_fault("unreachable")
            return
        if state.needs_join(now):
            backend.group.add(member.name)
            backend.beats[member.name] = now + LEASE
            state = state.with_join(now, now)
        # A slow heartbeat: the backend sees it up to 0.3 s after we sent it.
        delay = rng.choice([0.0, 0.0, 0.1, 0.3])
        backend.beats[member.name] = now + delay + LEASE
        state = state.with_heartbeat(now, now + delay)
        member.state = state.with_view(View(backend.members(now), now))

    for step in range(steps):
        now = clock.advance(0.05)
        roll = rng.random()
        live = [m for m in members if m.alive]
        if roll < 0.01 or not live:
            name = f"m{len(members)}"
            members.append(Member(name, Ownership(name, LEASE), next_tick=now))
        elif roll < 0.015 and len(live) > 1:
            gone = rng.choice(live)  # graceful stop: stop claiming, then leave
            gone.state = gone.state.with_leave()
            gone.alive = False
            backend.group.discard(gone.name)
        elif roll < 0.02 and len(live) > 1:
            rng.choice(live).alive = False  # crash: the backend forgets it after the lease
        elif roll < 0.03:
            victim = rng.choice(live)
            victim.cut_off = not victim.cut_off  # network partition on / off
        elif roll < 0.032:
            backend.group.clear()  # the backend restarts empty
            backend.beats.clear()
        for member in members:
            if member.alive and now >= member.next_tick:
                tick(member, now)
                member.next_tick = now + heartbeat * rng.uniform(0.8, 1.2)
        claims: Counter[str] = Counter()
        for member in members:
            if member.alive:
                claims.update(member.state.owned(keys, now))
        problems.extend(
            f"step {step} t={now:.2f}: {k} owned twice" for k, n in claims.items() if n > 1
        )
    return problems


@pytest.mark.parametrize("seed", range(6))
def test_simulated_group_never_has_two_owners(seed: int) -> None:
    assert simulate(seed) == []


def test_simulated_group_owns_keys_most_of_the_time() -> None:
    """The safety rules do not make ownership vanish: in a calm group every key is owned."""
    clock = FakeClock()
    names = ["a", "b", "c"]
    states = {n: Ownership(n, LEASE).with_join(clock(), clock()) for n in names}
    for _ in range(int(LEASE / 0.5) + 1):
        now = clock.advance(0.5)
        states = {
            n: s.with_heartbeat(now, now).with_view(View(dict.fromkeys(names, 1), now))
            for n, s in states.items()
        }
    for key in KEYS:
        assert sum(s.owns(key, clock()) for s in states.values()) == 1
