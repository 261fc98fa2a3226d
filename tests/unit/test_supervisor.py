"""The pure supervisor, driven by events and a fake clock (no fork, no sleep)."""

from __future__ import annotations

import pytest

from cotyledon import _supervisor as sv
from cotyledon._restart_policy import DEFAULT_PAUSE, GiveUpPolicy
from tests.unit._supervisor_harness import FakeMaster


def test_start_forks_every_slot_in_order() -> None:
    m = FakeMaster()
    a = m.add(2)
    b = m.add(1)
    assert m.of_type(sv.SpawnWorker) == []  # nothing before run()
    spawns = m.of_type(sv.SpawnWorker, m.start())
    assert [(s.service_id, s.worker_id) for s in spawns] == [(a, 0), (a, 1), (b, 0)]


def test_dead_worker_is_reported_and_respawned_with_the_same_id() -> None:
    m = FakeMaster()
    sid = m.add(2)
    m.start()
    pid = m.workers_of(sid)[1]
    actions = m.die(pid, -9)
    assert actions[0] == sv.ReportExit(sid, 1, pid, -9)
    assert sv.SpawnWorker(sid, 1) in actions
    assert sorted(m.workers_of(sid)) == [0, 1]
    assert pid not in m.workers_of(sid).values()


def test_ready_only_when_every_initial_worker_started() -> None:
    m = FakeMaster()
    m.add(2)
    m.start()
    pids = list(m.alive)
    assert m.of_type(sv.Notify) == [sv.Notify("status", "0/2 workers running")]
    # Start-up progress reaches `systemctl status` before READY (systemd.md 1.6 step 4).
    assert m.feed(sv.WorkerStarted(pids[0])) == [sv.Notify("status", "1/2 workers running")]
    actions = m.feed(sv.WorkerStarted(pids[1]))
    assert actions == [sv.Notify("ready", "2/2 workers running")]


def test_status_line_counts_each_named_service() -> None:
    m = FakeMaster()
    web = m.add(2, name="web")
    m.add(1, name="Collector")
    m.start()
    m.feed(sv.WorkerStarted(m.workers_of(web)[0]))
    assert m.sup.status_line() == "1/3 workers running (web 1/2, Collector 0/1)"


def test_no_services_is_ready_at_once() -> None:
    m = FakeMaster()
    assert m.start() == [sv.Notify("ready", "0/0 workers running")]


def test_reconfigure_up_forks_at_once_and_down_stops_without_respawn() -> None:
    """spec/api.md section 6.2 and 6.4."""
    m = FakeMaster()
    sid = m.add(2)
    m.start()
    spawns = m.of_type(sv.SpawnWorker, m.feed(sv.Reconfigured(sid, 4)))
    assert [s.worker_id for s in spawns] == [2, 3]
    surplus = m.workers_of(sid)[3]
    actions = m.feed(sv.Reconfigured(sid, 3))
    assert actions == [sv.StopWorker(surplus)]
    actions = m.die(surplus, 0)
    assert m.of_type(sv.SpawnWorker, actions) == []
    assert sorted(m.workers_of(sid)) == [0, 1, 2]


def test_reconfigure_to_zero_stops_every_worker() -> None:
    m = FakeMaster()
    sid = m.add(2)
    m.start()
    stops = m.of_type(sv.StopWorker, m.feed(sv.Reconfigured(sid, 0)))
    assert len(stops) == 2
    assert m.workers_of(sid) == {}


def test_add_after_start_forks_at_once() -> None:
    m = FakeMaster()
    m.start()
    sid = m.add(3)
    assert len(m.workers_of(sid)) == 3


def test_graceful_stop_sequence_and_exit() -> None:
    m = FakeMaster()
    m.add(2)
    m.start()
    pids = tuple(m.alive)
    actions = m.feed(sv.StopRequested())
    assert actions == [
        sv.Notify("stopping", "stopping"),
        sv.RunHooks("terminate"),
        sv.StopWorkers(pids),
    ]
    assert m.die(pids[0], 0) == []  # no report, no respawn during shutdown (6.3)
    assert m.die(pids[1], 0) == [sv.Exit(0)]
    assert m.sup.finished


def test_graceful_stop_times_out_then_kills() -> None:
    m = FakeMaster(timeout=2)
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.advance(1.9) == []
    actions = m.advance(0.2)
    assert actions == [sv.GracefulTimeout(tuple(m.sup.live_pids()))]
    assert m.sup.finished


def test_graceful_timeout_zero_waits_forever() -> None:
    m = FakeMaster(timeout=0)
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.sup.next_timeout(m.now) is None


def test_second_sigterm_is_ignored() -> None:
    m = FakeMaster()
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.feed(sv.StopRequested()) == []


def test_fast_exit_interrupts_then_kills_after_grace() -> None:
    m = FakeMaster()
    m.add(2)
    m.start()
    pids = tuple(m.alive)
    assert m.feed(sv.FastExitRequested()) == [sv.InterruptWorkers(pids)]
    m.die(pids[0], 1)
    actions = m.advance(sv.FAST_EXIT_GRACE)
    assert actions == [sv.KillWorkers((pids[1],)), sv.Exit(1)]


def test_fast_exit_with_all_dead_exits_at_once() -> None:
    m = FakeMaster()
    m.add(1)
    m.start()
    m.feed(sv.FastExitRequested())
    (pid,) = m.alive
    assert m.die(pid, 1) == [sv.Exit(1)]


def test_reload_notifies_runs_hooks_forwards_then_ready_after_respawn() -> None:
    m = FakeMaster()
    sid = m.add(2)
    m.start()
    m.started_all()
    old = tuple(m.alive)
    actions = m.feed(sv.ReloadRequested())
    assert actions == [
        sv.Notify("reloading", "reloading"),
        sv.RunHooks("reload"),
        sv.ReloadWorkers(old),
    ]
    m.die(old[0], 0)
    m.started_all()
    assert m.of_type(sv.Notify, m.feed(sv.WorkerStarted(old[1]))) == []  # still reloading
    m.die(old[1], 0)
    actions = m.feed(sv.WorkerStarted(m.workers_of(sid)[1]))
    assert actions == [sv.Notify("ready", "2/2 workers running")]


def test_reload_in_place_is_complete_when_every_worker_acknowledged() -> None:
    m = FakeMaster()
    m.add(2)
    m.start()
    m.started_all()
    m.feed(sv.ReloadRequested())
    first, second = m.alive
    assert m.feed(sv.WorkerReloaded(first)) == []
    assert m.feed(sv.WorkerReloaded(second)) == [sv.Notify("ready", "2/2 workers running")]


def test_crash_loop_is_throttled_by_a_deadline_not_a_sleep() -> None:
    m = FakeMaster()
    crashy = m.add(1)
    healthy = m.add(1)
    m.start()
    m.die(m.workers_of(crashy)[0], 1)  # restarts 1 and 2 (N + 1 in N s): at once
    m.die(m.workers_of(crashy)[0], 1)
    actions = m.die(m.workers_of(crashy)[0], 1)  # restart 3 within 1 s: pause
    assert sv.Throttled(crashy, m.now + DEFAULT_PAUSE) in actions
    assert m.workers_of(crashy) == {}
    assert m.sup.next_timeout(m.now) == DEFAULT_PAUSE
    # the healthy service is not held back
    actions = m.die(m.workers_of(healthy)[0], 1)
    assert sv.SpawnWorker(healthy, 0) in actions
    # and the shutdown neither
    assert m.feed(sv.StopRequested())[0] == sv.Notify("stopping", "stopping")
    assert m.advance(DEFAULT_PAUSE) == []


def test_throttle_pause_ends_with_a_fork() -> None:
    m = FakeMaster()
    sid = m.add(1)
    m.start()
    for _ in range(3):
        m.die(m.workers_of(sid)[0], 1)
    assert m.advance(DEFAULT_PAUSE - 0.1) == []
    assert m.of_type(sv.SpawnWorker, m.advance(0.1)) == [sv.SpawnWorker(sid, 0)]
    # a fresh burst after the pause
    assert sv.SpawnWorker(sid, 0) in m.die(m.workers_of(sid)[0], 1)


def test_many_workers_killed_at_once_are_all_replaced_at_once() -> None:
    m = FakeMaster()
    sid = m.add(50)
    m.start()
    for pid in list(m.alive):
        m.die(pid, -9)
    assert sorted(m.workers_of(sid)) == list(range(50))
    assert m.of_type(sv.Throttled) == []


def test_scale_up_does_not_eat_the_restart_budget() -> None:
    m = FakeMaster()
    sid = m.add(1)
    m.start()
    m.feed(sv.Reconfigured(sid, 10))
    assert len(m.workers_of(sid)) == 10
    for wid in range(10):
        m.die(m.workers_of(sid)[wid], 1)
    assert m.of_type(sv.Throttled) == []


def test_patched_gate_means_instant_respawns() -> None:
    m = FakeMaster(respawn_gate=lambda sid, now: 0.0)
    sid = m.add(1)
    m.start()
    for _ in range(20):
        assert sv.SpawnWorker(sid, 0) in m.die(m.workers_of(sid)[0], 1)


def test_reload_clears_the_fork_history() -> None:
    m = FakeMaster()
    sid = m.add(1)
    m.start()
    m.die(m.workers_of(sid)[0], 1)
    m.die(m.workers_of(sid)[0], 1)
    m.feed(sv.ReloadRequested())
    assert sv.SpawnWorker(sid, 0) in m.die(m.workers_of(sid)[0], 0)


def test_give_up_stops_the_manager_with_exit_3() -> None:
    m = FakeMaster(respawn_gate=lambda sid, now: 0.0)
    sid = m.add(1, give_up=GiveUpPolicy(max_restarts=2, period=10))
    other = m.add(1)
    m.start()
    m.die(m.workers_of(sid)[0], 1)
    m.die(m.workers_of(sid)[0], 1)
    actions = m.die(m.workers_of(sid)[0], 1)
    assert actions[1] == sv.GaveUp(sid, 2, 10)
    assert m.of_type(sv.SpawnWorker, actions) == []
    assert sv.StopWorkers((m.workers_of(other)[0],)) in actions
    m.die(m.workers_of(other)[0], 0)
    assert m.exit_code == sv.EXIT_GAVE_UP


def test_failed_fork_is_retried_with_backoff() -> None:
    m = FakeMaster()
    sid = m.add(1)
    m.fail_forks = True
    actions = m.start()
    assert actions[-1] == sv.RetrySpawn(sid, 0, sv.SPAWN_RETRY_FIRST, "EAGAIN")
    actions = m.advance(sv.SPAWN_RETRY_FIRST)
    assert actions[-1] == sv.RetrySpawn(sid, 0, 2 * sv.SPAWN_RETRY_FIRST, "EAGAIN")
    for _ in range(20):
        actions = m.advance(sv.SPAWN_RETRY_MAX)
    assert actions[-1].delay == sv.SPAWN_RETRY_MAX  # type: ignore[union-attr]
    m.fail_forks = False
    m.advance(sv.SPAWN_RETRY_MAX)
    assert list(m.workers_of(sid)) == [0]


def test_watchdog_pings_only_while_healthy() -> None:
    m = FakeMaster(watchdog_interval=1.0)
    m.add(1)
    m.start()
    assert m.advance(1.0) == [sv.Notify("watchdog")]
    (pid,) = m.alive
    m.feed(sv.HealthReported(pid, ok=False, reason="db down"))
    assert m.advance(1.0) == []
    m.die(pid, 1)  # a dead worker's health is forgotten
    assert m.advance(1.0) == [sv.Notify("watchdog")]


def test_extend_timeout_while_stopping() -> None:
    m = FakeMaster(extend_interval=5.0)
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.advance(5.0) == [sv.Notify("extend", "stopping")]


def test_extend_timeout_stops_at_the_graceful_deadline() -> None:
    m = FakeMaster(timeout=12, extend_interval=5.0)
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.advance(5.0) == [sv.Notify("extend", "stopping")]  # t=5, deadline at 12
    assert m.advance(5.0) == [sv.Notify("extend", "stopping")]  # t=10: the last one
    actions = m.advance(5.0)  # t=15: the graceful deadline (12) passed, no more extension
    assert sv.Notify("extend", "stopping") not in actions
    assert not [a for a in m.advance(30.0) if isinstance(a, sv.Notify)]


def test_unbounded_stop_never_asks_systemd_for_more_time() -> None:
    m = FakeMaster(timeout=0, extend_interval=5.0)
    m.add(1)
    m.start()
    m.feed(sv.StopRequested())
    assert m.advance(60.0) == []


def test_idle_master_has_no_deadline() -> None:
    m = FakeMaster()
    m.add(3)
    m.start()
    m.started_all()
    assert m.sup.next_timeout(m.now) is None


def test_unknown_pid_exit_is_ignored() -> None:
    m = FakeMaster()
    m.add(1)
    m.start()
    assert m.feed(sv.ChildExited(99999, 0)) == []


@pytest.mark.parametrize("event", [sv.WorkerStarted(1), sv.HealthReported(1, True)])
def test_messages_from_unknown_pids_are_ignored(event: sv.Event) -> None:
    m = FakeMaster()
    m.start()
    assert m.feed(event) == []


def test_status_line_says_worker_for_one() -> None:
    m = FakeMaster()
    m.add(1)
    m.start()
    assert m.of_type(sv.Notify) == [sv.Notify("status", "0/1 worker running")]
    assert m.feed(sv.WorkerStarted(next(iter(m.alive)))) == [
        sv.Notify("ready", "1/1 worker running")
    ]
