"""Unit tests for cotyledon.wsgi._rollout: pure, a fake clock, and a hypothesis model."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cotyledon.wsgi._rollout import (
    AbortRollout,
    Action,
    DeadlineReached,
    Event,
    KillWorker,
    RetireWorker,
    Rollout,
    RolloutComplete,
    RolloutConfig,
    RolloutRequested,
    RolloutStarted,
    SlotRemoved,
    StartReplacement,
    WorkerExited,
    WorkerReady,
    WorkerStarted,
)


def fleet(n: int, config: RolloutConfig | None = None) -> Rollout:
    """A rollout machine whose slots 0..n-1 run pids 100..100+n-1, all ready."""
    rollout = Rollout(config or RolloutConfig(start_timeout=10, drain_timeout=5))
    for slot in range(n):
        assert rollout.on_event(WorkerReady(slot, 100 + slot), now=0.0) == []
    return rollout


def test_full_rollout_one_at_a_time() -> None:
    r = fleet(2)
    assert r.on_event(RolloutRequested("SIGHUP"), 1.0) == [
        RolloutStarted(1, "SIGHUP", (0, 1)),
        StartReplacement(0, 1),
    ]
    assert r.in_transition(0)
    assert r.on_event(WorkerStarted(0, 200), 1.1) == []
    # Ready: only now is the old worker of slot 0 retired; slot 1 waits (max_unavailable 1).
    assert r.on_event(WorkerReady(0, 200), 2.0) == [RetireWorker(0, 100, deadline=7.0)]
    assert r.current() == {0: 200, 1: 101}
    assert r.on_event(WorkerExited(0, 100), 3.0) == [StartReplacement(1, 1)]
    r.on_event(WorkerStarted(1, 201), 3.0)
    assert r.on_event(WorkerReady(1, 201), 4.0) == [RetireWorker(1, 101, deadline=9.0)]
    assert r.on_event(WorkerExited(1, 101), 5.0) == [RolloutComplete(1, "SIGHUP")]
    assert not r.active
    assert r.current() == {0: 200, 1: 201}
    assert r.next_deadline() is None


def test_wider_rollout_starts_several_and_drains_while_booting() -> None:
    r = fleet(4, RolloutConfig(max_surge=2, max_unavailable=3, start_timeout=10))
    actions = r.on_event(RolloutRequested("reload"), 0.0)
    assert actions[1:] == [StartReplacement(0, 1), StartReplacement(1, 1)]
    r.on_event(WorkerStarted(0, 200), 0.0)
    r.on_event(WorkerStarted(1, 201), 0.0)
    # Slot 0 ready: retire 100; now 1 booting + 1 draining = 2 < 3, surge allows one more.
    assert r.on_event(WorkerReady(0, 200), 1.0) == [
        RetireWorker(0, 100, deadline=31.0),
        StartReplacement(2, 1),
    ]
    r.on_event(WorkerStarted(2, 202), 1.0)
    # 2 booting + 1 draining = 3: nothing more until something finishes.
    assert r.on_event(WorkerReady(1, 201), 2.0) == [RetireWorker(1, 101, deadline=32.0)]
    assert r.on_event(WorkerExited(0, 100), 2.5) == [StartReplacement(3, 1)]


def test_drain_deadline_kills_the_old_worker() -> None:
    r = fleet(1)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(WorkerReady(0, 200), 1.0) == [RetireWorker(0, 100, deadline=6.0)]
    assert r.next_deadline() == 6.0
    assert r.on_event(DeadlineReached(5.9), 5.9) == []
    assert r.on_event(DeadlineReached(6.0), 6.0) == [KillWorker(0, 100, "drain deadline passed")]
    assert r.next_deadline() is None  # killed: only its exit is awaited now
    assert r.active
    assert r.on_event(WorkerExited(0, 100), 6.1) == [RolloutComplete(1, "SIGHUP")]


def test_replacement_not_ready_in_time_aborts_and_keeps_the_old_workers() -> None:
    r = fleet(3)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.next_deadline() == 10.0
    assert r.on_event(DeadlineReached(10.0), 10.0) == [
        KillWorker(0, 200, "rollout aborted"),
        AbortRollout(1, "the replacement for slot 0 (pid 200) was not ready within 10s"),
    ]
    assert not r.active
    assert r.current() == {0: 100, 1: 101, 2: 102}
    assert r.status().last_abort is not None
    # The killed replacement is reaped later: nothing happens.
    assert r.on_event(WorkerExited(0, 200), 11.0) == []
    assert r.current() == {0: 100, 1: 101, 2: 102}


def test_replacement_that_exits_aborts() -> None:
    r = fleet(2)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(WorkerExited(0, 200), 0.5) == [
        AbortRollout(1, "the replacement for slot 0 (pid 200) exited before it was ready")
    ]
    assert r.current() == {0: 100, 1: 101}


def test_abort_lets_already_retired_workers_finish_draining() -> None:
    r = fleet(2, RolloutConfig(max_surge=1, max_unavailable=2, start_timeout=10))
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(WorkerReady(0, 200), 1.0) == [
        RetireWorker(0, 100, deadline=31.0),
        StartReplacement(1, 1),
    ]
    r.on_event(WorkerStarted(1, 201), 1.0)
    actions = r.on_event(DeadlineReached(11.0), 11.0)
    assert actions == [
        KillWorker(1, 201, "rollout aborted"),
        AbortRollout(1, "the replacement for slot 1 (pid 201) was not ready within 10s"),
    ]
    assert r.current() == {0: 200, 1: 101}
    assert r.draining_pids() == {100}
    assert r.on_event(DeadlineReached(31.0), 31.0) == [KillWorker(0, 100, "drain deadline passed")]


def test_requests_during_a_rollout_coalesce_into_exactly_one_more() -> None:
    r = fleet(1)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    for _ in range(5):
        assert r.on_event(RolloutRequested("SIGHUP"), 0.1) == []
    assert r.status().queued
    r.on_event(WorkerStarted(0, 200), 0.2)
    r.on_event(WorkerReady(0, 200), 0.3)
    assert r.on_event(WorkerExited(0, 100), 0.4) == [
        RolloutComplete(1, "SIGHUP"),
        RolloutStarted(2, "SIGHUP", (0,)),
        StartReplacement(0, 2),
    ]
    r.on_event(WorkerStarted(0, 300), 0.5)
    r.on_event(WorkerReady(0, 300), 0.6)
    assert r.on_event(WorkerExited(0, 200), 0.7) == [RolloutComplete(2, "SIGHUP")]
    assert not r.active
    assert not r.status().queued


def test_queued_request_runs_after_an_abort() -> None:
    r = fleet(1)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    r.on_event(RolloutRequested("reload: app.py changed"), 1.0)
    actions = r.on_event(WorkerExited(0, 200), 2.0)
    assert actions == [
        AbortRollout(1, "the replacement for slot 0 (pid 200) exited before it was ready"),
        RolloutStarted(2, "reload: app.py changed", (0,)),
        StartReplacement(0, 2),
    ]


def test_recycling_one_slot_replaces_only_that_slot() -> None:
    r = fleet(3)
    assert r.on_event(RolloutRequested("max_requests", frozenset({1})), 0.0) == [
        RolloutStarted(1, "max_requests", (1,)),
        StartReplacement(1, 1),
    ]
    r.on_event(WorkerStarted(1, 201), 0.0)
    assert r.on_event(WorkerReady(1, 201), 1.0) == [RetireWorker(1, 101, deadline=6.0)]
    assert r.on_event(WorkerExited(1, 101), 2.0) == [RolloutComplete(1, "max_requests")]
    assert r.current() == {0: 100, 1: 201, 2: 102}


def test_recycle_request_for_a_slot_the_rollout_will_replace_is_dropped() -> None:
    r = fleet(3)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    assert r.on_event(RolloutRequested("max_age", frozenset({2})), 0.1) == []
    assert not r.status().queued
    # ...but one for a slot already replaced is queued.
    r.on_event(WorkerStarted(0, 200), 0.2)
    r.on_event(WorkerReady(0, 200), 0.3)
    r.on_event(WorkerExited(0, 100), 0.4)
    assert r.on_event(RolloutRequested("max_memory", frozenset({0})), 0.5) == []
    assert r.status().queued


def test_queued_slot_requests_merge() -> None:
    r = fleet(4)
    r.on_event(RolloutRequested("max_age", frozenset({0})), 0.0)
    r.on_event(RolloutRequested("max_requests", frozenset({1})), 0.0)
    r.on_event(RolloutRequested("max_memory", frozenset({3})), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    r.on_event(WorkerReady(0, 200), 0.0)
    actions = r.on_event(WorkerExited(0, 100), 0.0)
    assert actions[:2] == [
        RolloutComplete(1, "max_age"),
        RolloutStarted(2, "max_requests, max_memory", (1, 3)),
    ]


def test_old_worker_crashing_while_its_replacement_boots() -> None:
    r = fleet(1)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(WorkerExited(0, 100), 0.5) == []
    assert r.current() == {}
    assert r.on_event(WorkerReady(0, 200), 1.0) == [RolloutComplete(1, "SIGHUP")]
    assert r.current() == {0: 200}


def test_slot_without_a_worker_is_skipped() -> None:
    r = fleet(2)
    r.on_event(WorkerExited(0, 100), 0.0)
    assert r.on_event(RolloutRequested("SIGHUP"), 0.0) == [
        RolloutStarted(1, "SIGHUP", (1,)),
        StartReplacement(1, 1),
    ]


def test_removed_slot_is_not_replaced() -> None:
    r = fleet(3)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(SlotRemoved(2), 0.5) == []
    assert r.current() == {0: 100, 1: 101}
    # The driver retires 102 itself; its exit changes nothing for the rollout.
    assert r.on_event(WorkerExited(2, 102), 0.6) == []
    r.on_event(WorkerReady(0, 200), 1.0)
    r.on_event(WorkerExited(0, 100), 1.5)
    r.on_event(WorkerStarted(1, 201), 1.5)
    r.on_event(WorkerReady(1, 201), 2.0)
    assert r.on_event(WorkerExited(1, 101), 2.5) == [RolloutComplete(1, "SIGHUP")]
    assert r.current() == {0: 200, 1: 201}


def test_removing_a_slot_kills_its_booting_replacement() -> None:
    r = fleet(2)
    r.on_event(RolloutRequested("SIGHUP"), 0.0)
    r.on_event(WorkerStarted(0, 200), 0.0)
    assert r.on_event(SlotRemoved(0), 0.5) == [
        KillWorker(0, 200, "slot removed"),
        StartReplacement(1, 1),
    ]
    assert not r.in_transition(0)


def test_empty_fleet_completes_at_once() -> None:
    assert Rollout().on_event(RolloutRequested("SIGHUP"), 0.0) == [
        RolloutStarted(1, "SIGHUP", ()),
        RolloutComplete(1, "SIGHUP"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_surge": 0}, "'max_surge' must be an int >= 1, not: 0 (int)"),
        ({"max_unavailable": True}, "'max_unavailable' must be an int >= 1, not: True (bool)"),
        ({"max_surge": 2}, "'max_unavailable' (1) must be >= 'max_surge' (2)"),
        ({"start_timeout": 0}, "'start_timeout' must be a number > 0, not: 0 (int)"),
        ({"drain_timeout": "5"}, "'drain_timeout' must be a number > 0, not: '5' (str)"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        RolloutConfig(**kwargs)  # type: ignore[arg-type]


# -- the model: a fake driver and clock; hypothesis picks what happens next -----------------


class RolloutModel(RuleBasedStateMachine):
    """Drive a Rollout like the master would, and check its promises after every step."""

    @initialize(
        workers=st.integers(1, 5),
        surge=st.integers(1, 3),
        extra=st.integers(0, 2),
    )
    def setup(self, workers: int, surge: int, extra: int) -> None:
        self.config = RolloutConfig(
            max_surge=surge, max_unavailable=surge + extra, start_timeout=10, drain_timeout=5
        )
        self.rollout = Rollout(self.config)
        self.now = 0.0
        self.pids = itertools.count(100)
        self.accepting: dict[int, int] = {}  # pid -> slot: ready and not retired
        self.booting: dict[int, int] = {}  # pid -> slot: replacement started, not ready
        self.draining: dict[int, int] = {}  # pid -> slot: retired, not reaped
        self.doomed: dict[int, int] = {}  # pid -> slot: killed, not reaped
        self.aborted_since_start = False
        self.started = 0
        for slot in range(workers):
            pid = next(self.pids)
            self.accepting[pid] = slot
            self.send(WorkerReady(slot, pid))

    def send(self, event: Event) -> list[Action]:
        actions = self.rollout.on_event(event, self.now)
        for action in actions:
            self.perform(action, event)
        return actions

    def perform(self, action: Action, cause: Event) -> None:
        if isinstance(action, StartReplacement):
            pid = next(self.pids)
            self.booting[pid] = action.slot
            self.started += 1
            # The driver reports the fork at once (a later event, same instant).
            self.rollout.on_event(WorkerStarted(action.slot, pid), self.now)
        elif isinstance(action, RetireWorker):
            # Readiness gate: only the readiness of a replacement of the same slot retires.
            assert isinstance(cause, WorkerReady)
            assert cause.slot == action.slot
            assert cause.pid != action.pid
            assert not self.aborted_since_start
            assert self.accepting.pop(action.pid) == action.slot
            self.draining[action.pid] = action.slot
        elif isinstance(action, KillWorker):
            assert action.pid not in self.accepting, "killed a serving worker"
            slot = self.draining.pop(action.pid, None)
            if slot is None:
                slot = self.booting.pop(action.pid)
            self.doomed[action.pid] = slot
        elif isinstance(action, AbortRollout):
            self.aborted_since_start = True
        elif isinstance(action, RolloutStarted):
            self.aborted_since_start = False

    # -- what can happen ---------------------------------------------------------------

    @rule(subset=st.none() | st.frozensets(st.integers(0, 4), max_size=3))
    def request(self, subset: frozenset[int] | None) -> None:
        self.send(RolloutRequested("test", subset))

    @precondition(lambda self: self.booting)
    @rule(data=st.data())
    def replacement_ready(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.booting)))
        slot = self.booting.pop(pid)
        self.accepting[pid] = slot
        self.send(WorkerReady(slot, pid))

    @precondition(lambda self: self.booting)
    @rule(data=st.data())
    def replacement_crashes(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.booting)))
        slot = self.booting.pop(pid)
        actions = self.send(WorkerExited(slot, pid))
        assert any(isinstance(a, AbortRollout) for a in actions)

    @precondition(lambda self: self.draining or self.doomed)
    @rule(data=st.data())
    def old_worker_exits(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.draining | self.doomed)))
        slot = self.draining.pop(pid, None)
        if slot is None:
            slot = self.doomed.pop(pid)
        self.send(WorkerExited(slot, pid))

    @precondition(lambda self: len(self.accepting) > 1)
    @rule(data=st.data())
    def scale_down(self, data: st.DataObject) -> None:
        """SIGTTOU: the driver forgets a slot and retires its worker itself."""
        pid = data.draw(st.sampled_from(sorted(self.accepting)))
        slot = self.accepting.pop(pid)
        self.send(SlotRemoved(slot))
        self.doomed[pid] = slot

    @rule(seconds=st.sampled_from([0.5, 3.0, 6.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        deadline = self.rollout.next_deadline()
        if deadline is not None and deadline <= self.now:
            self.send(DeadlineReached(self.now))

    # -- promises ----------------------------------------------------------------------

    @invariant()
    def bounded(self) -> None:
        if not hasattr(self, "rollout"):
            return
        assert len(self.booting) <= self.config.max_surge
        assert len(self.booting) + len(self.draining) <= self.config.max_unavailable

    @invariant()
    def capacity_kept(self) -> None:
        """Every slot the machine considers served has exactly one accepting worker."""
        if not hasattr(self, "rollout"):
            return
        current = self.rollout.current()
        assert sorted(current.values()) == sorted(self.accepting)
        for pid, slot in self.accepting.items():
            assert current[slot] == pid

    @invariant()
    def no_overdue_deadline(self) -> None:
        if not hasattr(self, "rollout"):
            return
        # time_passes delivers every deadline that is due, so between steps none is overdue.
        deadline = self.rollout.next_deadline()
        assert deadline is None or deadline > self.now

    def teardown(self) -> None:
        if not hasattr(self, "rollout"):
            return
        # Liveness: with cooperative workers every rollout ends and nothing stays queued.
        for _ in range(200):
            if self.booting:
                pid = min(self.booting)
                slot = self.booting.pop(pid)
                self.accepting[pid] = slot
                self.send(WorkerReady(slot, pid))
            elif self.draining or self.doomed:
                pid = min(self.draining | self.doomed)
                slot = self.draining.pop(pid, None)
                if slot is None:
                    slot = self.doomed.pop(pid)
                self.send(WorkerExited(slot, pid))
            else:
                break
        status = self.rollout.status()
        assert not status.active
        assert not status.queued
        assert self.rollout.next_deadline() is None


TestRolloutModel = RolloutModel.TestCase
TestRolloutModel.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
