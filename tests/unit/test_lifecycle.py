"""cotyledon.wsgi._lifecycle with a fake core (Effects), a fake clock and a real scoreboard
written in-process (as the workers would write it after fork)."""

from __future__ import annotations

import itertools
import random
import signal
from collections.abc import Iterator

import pytest

from cotyledon.wsgi._health_render import render_html, render_metrics
from cotyledon.wsgi._lifecycle import Lifecycle, LifecycleConfig
from cotyledon.wsgi._memory import MemoryKind
from cotyledon.wsgi._recycling import RecyclePolicy
from cotyledon.wsgi._rollout import RolloutConfig
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus, SlotWriter
from cotyledon.wsgi._stackdump import DUMP_SIGNAL


class FakeCore:
    """Records what the lifecycle asks the core to do; forks are pids from a counter."""

    def __init__(self) -> None:
        self.pids = itertools.count(1000)
        self.started: list[tuple[int, int, int]] = []  # (slot, generation, pid)
        self.retired: list[int] = []
        self.signals: list[tuple[int, int]] = []
        self.notified: list[dict[str, object]] = []
        self.fail_next_fork = False

    def start_replacement(self, slot: int, generation: int, board_index: int) -> int:
        if self.fail_next_fork:
            self.fail_next_fork = False
            raise OSError("fork failed: EAGAIN")
        pid = next(self.pids)
        self.started.append((slot, generation, pid))
        return pid

    def retire(self, pid: int) -> None:
        self.retired.append(pid)

    def send_signal(self, pid: int, signum: int) -> None:
        self.signals.append((pid, signum))

    def notify(self, **fields: object) -> None:
        self.notified.append(fields)


class Harness:
    def __init__(self, config: LifecycleConfig, memory: dict[int, int] | None = None) -> None:
        self.now = 0.0
        self.core = FakeCore()
        self.board = Scoreboard(16, clock=lambda: self.now)
        self.memory = memory if memory is not None else {}
        self.life = Lifecycle(
            config,
            self.core,
            self.board,
            clock=lambda: self.now,
            rng=random.Random(0),
            measure=lambda pid, kind: self.memory.get(pid),
        )
        self.writers: dict[int, SlotWriter] = {}

    def boot(self, slot: int) -> int:
        """The core's own fork (first start or respawn) of a worker that becomes ready."""
        index = self.life.claim_board_index(slot)
        pid = next(self.core.pids)
        self.life.on_forked(slot, pid)
        self.ready(slot, pid, index)
        return pid

    def ready(self, slot: int, pid: int, index: int | None = None) -> None:
        if index is None:
            index = self.life._workers[pid].board_index
        writer = self.board.writer(index, pid=pid)
        writer.set_status(SlotStatus.READY)
        self.writers[pid] = writer
        self.life.on_ready(slot, pid)

    def serve(self, pid: int, requests: int, status: int = 200) -> None:
        for _ in range(requests):
            self.writers[pid].request_started()
            self.writers[pid].request_finished(0.01, status)

    def exit(self, pid: int, code: int = 0) -> None:
        slot = self.life._workers[pid].slot
        self.writers.pop(pid, None)
        self.life.on_exited(slot, pid, code)

    def close(self) -> None:
        self.writers.clear()
        self.board.close()


@pytest.fixture
def make() -> Iterator[type[Harness]]:
    made: list[Harness] = []

    class Tracked(Harness):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for harness in made:
        harness.close()


def test_sighup_cycles_every_worker_and_tells_systemd(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=2, memory_interval=0))
    old = [h.boot(0), h.boot(1)]
    h.life.request_rollout("SIGHUP")
    assert h.core.notified[0]["RELOADING"] == 1
    (slot, generation, new0) = h.core.started[-1]
    assert (slot, generation) == (0, 1)
    assert h.core.retired == []  # not before the replacement is ready
    h.ready(0, new0)
    assert h.core.retired == [old[0]]
    h.exit(old[0])
    new1 = h.core.started[-1][2]
    h.ready(1, new1)
    h.exit(old[1])
    assert h.core.notified[-1] == {"READY": 1, "STATUS": "2 workers, generation 1"}
    assert h.life.restarts == {"reload": 2}
    assert h.life.rollout.current() == {0: new0, 1: new1}
    assert h.life.last_restart[0] == ("reload", 0.0)


def test_max_requests_recycles_only_that_worker(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=2, recycling=RecyclePolicy(max_requests=3)))
    busy, idle = h.boot(0), h.boot(1)
    h.serve(busy, 2)
    h.life.on_tick()
    assert h.core.started == []
    h.serve(busy, 1)
    h.life.on_tick()
    assert [s[0] for s in h.core.started] == [0]
    h.life.on_tick()  # no second request while the first is under way
    assert len(h.core.started) == 1
    replacement = h.core.started[0][2]
    h.now = 2.0
    h.ready(0, replacement)
    assert h.core.retired == [busy]
    assert h.life.restarts == {"max_requests": 1}
    assert idle not in h.core.retired
    # No RELOADING for a recycle; STATUS only when it completes.
    h.exit(busy)
    assert all("RELOADING" not in n and "READY" not in n for n in h.core.notified)
    snapshot = h.life.snapshot()
    assert snapshot.requests_total == 3  # the retired worker's requests are kept
    row = {w.pid: w for w in snapshot.workers}[replacement]
    assert (row.last_restart_reason, row.last_restart_age) == ("max_requests", 0.0)


def test_memory_limit_uses_the_sampled_memory(make: type[Harness]) -> None:
    memory: dict[int, int] = {}
    config = LifecycleConfig(
        workers=2,
        recycling=RecyclePolicy(max_memory=100 << 20),
        memory_interval=5.0,
        memory_kind=MemoryKind.USS,
    )
    h = make(config, memory)
    fat, thin = h.boot(0), h.boot(1)
    memory.update({fat: 150 << 20, thin: 20 << 20})
    h.life.on_tick()
    assert [s[0] for s in h.core.started] == [0]
    assert h.life.memory == {fat: 150 << 20, thin: 20 << 20}
    assert h.life.next_deadline() is not None


def test_hung_worker_is_dumped_then_killed(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=1, timeout=5.0, memory_interval=0))
    pid = h.boot(0)
    assert h.life.next_deadline() == 5.0
    h.now = 4.0
    h.life.on_tick()
    assert h.core.signals == []
    h.now = 6.0
    h.life.on_tick()
    assert h.core.signals == [(pid, DUMP_SIGNAL)]
    h.life.on_tick()  # dumped once only
    assert h.core.signals == [(pid, DUMP_SIGNAL)]
    assert h.life.next_deadline() == 7.0
    h.now = 7.0
    h.life.on_tick()
    assert h.core.signals == [(pid, DUMP_SIGNAL), (pid, signal.SIGKILL)]
    assert h.life.next_deadline() is None  # nothing left to wait for but the reap
    h.exit(pid, -9)
    assert h.life.restarts == {"hung": 1}  # not also counted as a crash


def test_heartbeats_keep_a_worker_alive(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=1, timeout=5.0, memory_interval=0))
    pid = h.boot(0)
    for step in range(1, 20):
        h.now = step * 2.0
        h.writers[pid].heartbeat()
        h.life.on_tick()
    assert h.core.signals == []


def test_crash_is_counted_and_the_slot_respawned_by_the_core(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=1, memory_interval=0))
    pid = h.boot(0)
    h.exit(pid, 1)
    assert h.life.restarts == {"crashed": 1}
    again = h.boot(0)
    assert h.life.rollout.current() == {0: again}


def test_scale_down_retires_without_replacement(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=2, memory_interval=0))
    first, second = h.boot(0), h.boot(1)
    assert h.life.scale_down(1) == second
    assert h.core.retired == [second]
    assert h.core.started == []
    h.exit(second)
    assert h.life.restarts == {}  # a scale-down is not a crash
    assert h.life.rollout.current() == {0: first}
    assert h.life.scale_down(7) is None
    # SIGTTIN: the core forks a new slot, which simply joins.
    third = h.boot(2)
    assert h.life.rollout.current() == {0: first, 2: third}


def test_aborted_rollout_pauses_recycling(make: type[Harness]) -> None:
    config = LifecycleConfig(
        workers=1,
        recycling=RecyclePolicy(max_requests=1),
        rollout=RolloutConfig(start_timeout=10.0),
        memory_interval=0,
    )
    h = make(config)
    pid = h.boot(0)
    h.serve(pid, 1)
    h.life.on_tick()
    doomed = h.core.started[-1][2]
    h.now = 10.0
    h.life.on_tick()  # start timeout: abort
    assert (doomed, signal.SIGKILL) in h.core.signals
    assert h.life.rollout.current() == {0: pid}
    h.exit(doomed, -9)
    assert "crashed" not in h.life.restarts
    h.now = 15.0
    h.life.on_tick()
    assert len(h.core.started) == 1  # paused: no loop of doomed replacements
    h.now = 20.0
    h.life.on_tick()
    assert len(h.core.started) == 2


def test_sighup_abort_sends_ready_with_the_reason(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=1, memory_interval=0))
    h.boot(0)
    h.life.request_rollout("SIGHUP")
    doomed = h.core.started[-1][2]
    h.exit(doomed, 1)
    assert h.core.notified[-1]["READY"] == 1
    assert "reload aborted: the replacement for slot 0" in str(h.core.notified[-1]["STATUS"])


def test_fork_failure_is_logged_and_does_not_crash(
    make: type[Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make(LifecycleConfig(workers=1, memory_interval=0))
    h.boot(0)
    h.core.fail_next_fork = True
    h.life.request_rollout("SIGHUP")
    assert "Cannot start a replacement for worker 0: fork failed: EAGAIN" in caplog.text
    # The start timeout then aborts the rollout; the old worker keeps serving.
    h.now = 61.0
    h.life.on_tick()
    assert "Rollout 1 aborted" in caplog.text


def test_snapshot_renders(make: type[Harness]) -> None:
    h = make(LifecycleConfig(workers=2, service="shop", binds=("127.0.0.1:8000",)))
    pid = h.boot(0)
    h.serve(pid, 4, status=500)
    h.now = 12.0
    snapshot = h.life.snapshot()
    assert snapshot.uptime == 12.0
    assert snapshot.ready_workers == 1
    assert dict(snapshot.status_classes)["5xx"] == 4
    assert b"1 / 2 ready" in render_html(snapshot)
    assert b'cotyledon_http_requests_total{code="5xx"} 4' in render_metrics(snapshot)
