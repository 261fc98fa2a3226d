"""Property test: any sequence of child deaths, signals, reconfigures and deadlines keeps
exactly the configured workers, never forks while stopping, and ends with every child
reaped."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cotyledon import _supervisor as sv
from tests.unit._supervisor_harness import FakeMaster


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = FakeMaster(timeout=30)
        self.services = [self.m.add(2), self.m.add(1)]
        self.configured = dict(zip(self.services, (2, 1), strict=True))
        self.m.start()
        self.spawns_after_stop = 0

    def _feed(self, event: sv.Event) -> None:
        stopping = self.m.sup.phase is not sv.Phase.RUNNING
        actions = self.m.feed(event)
        if stopping:
            self.spawns_after_stop += len(self.m.of_type(sv.SpawnWorker, actions))

    @rule(index=st.integers(0, 50), code=st.sampled_from([0, 1, 2, -9, -15]))
    def child_dies(self, index: int, code: int) -> None:
        if self.m.alive:
            pid = sorted(self.m.alive)[index % len(self.m.alive)]
            del self.m.alive[pid]
            self._feed(sv.ChildExited(pid, code))

    @rule(index=st.integers(0, 50))
    def worker_starts(self, index: int) -> None:
        if self.m.alive:
            self._feed(sv.WorkerStarted(sorted(self.m.alive)[index % len(self.m.alive)]))

    @rule(which=st.integers(0, 1), workers=st.integers(-1, 5))
    def reconfigure(self, which: int, workers: int) -> None:
        sid = self.services[which]
        self.configured[sid] = max(workers, 0)
        self._feed(sv.Reconfigured(sid, workers))

    @rule()
    def add_service(self) -> None:
        if len(self.services) < 4:
            sid = self.m.add(1)
            self.services.append(sid)
            self.configured[sid] = 1

    @rule()
    def sighup(self) -> None:
        self._feed(sv.ReloadRequested())

    @rule()
    def sigterm(self) -> None:
        self._feed(sv.StopRequested())

    @rule()
    def sigint(self) -> None:
        self._feed(sv.FastExitRequested())

    @rule(seconds=st.sampled_from([0.01, 0.5, 1.0, 5.0, 40.0]))
    def time_passes(self, seconds: float) -> None:
        self.m.now += seconds
        self._feed(sv.Tick())

    @invariant()
    def never_forks_while_stopping(self) -> None:
        assert self.spawns_after_stop == 0

    @invariant()
    def at_most_one_current_process_per_configured_slot(self) -> None:
        if self.m.sup.phase is not sv.Phase.RUNNING:
            return  # while stopping, every worker is on its way out anyway
        for sid in self.services:
            current = self.m.workers_of(sid)
            assert set(current) <= set(range(self.configured[sid]))
            assert all(pid in self.m.alive for pid in current.values())

    @invariant()
    def exactly_the_configured_workers_once_no_deadline_is_pending(self) -> None:
        if self.m.sup.phase is not sv.Phase.RUNNING:
            return
        throttled = {key[1] for key in self.m.sup.deadlines._when if isinstance(key, tuple)}
        for sid in self.services:
            if sid not in throttled:
                assert sorted(self.m.workers_of(sid)) == list(range(self.configured[sid]))

    @invariant()
    def supervisor_tracks_exactly_the_live_children(self) -> None:
        if self.m.sup.finished:
            return
        assert set(self.m.sup.live_pids()) == set(self.m.alive)

    @precondition(lambda self: self.m.sup.finished)
    @invariant()
    def finished_means_every_child_reaped_or_killed(self) -> None:
        assert self.m.exit_code is not None
        if self.m.exit_code in (0, 3):
            assert not self.m.alive


TestSupervisorMachine = SupervisorMachine.TestCase
TestSupervisorMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
