"""Progressive replacement of workers, in the pure supervisor (fake clock, no fork).

The invariant under test: a slot's old worker gets SIGTERM only after its replacement has
entered run(), never more than ``max_surge`` slots are being replaced at once, and a
replacement that fails gives the slot back to the old worker and stops the rest.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotyledon import _supervisor as sv
from cotyledon._replacement import Replacement, ReplacePolicy
from cotyledon.types import WorkerId
from tests.unit._supervisor_harness import FakeMaster

pytestmark = pytest.mark.timeout(60)


def running(workers: int, **replace: object) -> tuple[FakeMaster, sv.ServiceId]:
    master = FakeMaster()
    sid = master.add(workers, name="web", **replace)
    master.start()
    master.started_all()
    master.actions.clear()
    return master, sid


def steps(master: FakeMaster, kind: str) -> list[sv.ReplaceStep]:
    return [a for a in master.of_type(sv.ReplaceStep) if a.kind == kind]  # type: ignore[misc]


def new_pids(master: FakeMaster, old: dict[int, int]) -> dict[int, int]:
    return {wid: pid for wid, pid in master.workers_of_all().items() if pid not in old.values()}


FakeMaster.workers_of_all = lambda self: {  # type: ignore[attr-defined]
    wid: pid for (_, wid), pid in self.sup._slots.items()
}


def test_sighup_replaces_one_worker_at_a_time_old_stops_after_new_started() -> None:
    master, sid = running(3, reload="replace")
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    assert not master.of_type(sv.ReloadWorkers)[0].pids  # type: ignore[attr-defined]
    assert master.of_type(sv.Notify)[0] == sv.Notify("reloading", "reloading")
    for number in range(3):
        spawned = [pid for pid in master.alive if pid not in old.values()]
        assert len(spawned) == number + 1  # one new process at a time
        new = spawned[-1]
        wid = master.alive[new][1]
        assert old[wid] not in master.signalled  # still serving
        master.feed(sv.WorkerStarted(new))
        assert master.signalled[old[wid]] == ["TERM"]
    assert [s.worker_id for s in steps(master, "replaced")] == [0, 1, 2]
    assert steps(master, "done")
    ready = [a for a in master.of_type(sv.Notify) if a.kind == "ready"]  # type: ignore[attr-defined]
    assert len(ready) == 1
    # The old workers exit: no restart, no new fork.
    forks_before = len(master.of_type(sv.SpawnWorker))
    for pid in old.values():
        master.die(pid)
    assert len(master.of_type(sv.SpawnWorker)) == forks_before
    assert sorted(master.workers_of(sid)) == [0, 1, 2]


def test_ready_waits_for_the_whole_replacement() -> None:
    master, _ = running(2, reload="replace")
    master.feed(sv.ReloadRequested())
    first = max(master.alive)
    master.feed(sv.WorkerStarted(first))
    notify = [a for a in master.of_type(sv.Notify) if a.kind in ("ready", "status")]  # type: ignore[attr-defined]
    assert all(a.kind == "status" and a.status.startswith("reloading: ") for a in notify)  # type: ignore[attr-defined]
    master.feed(sv.WorkerStarted(max(master.alive)))
    assert [a.kind for a in master.of_type(sv.Notify)][-1] == "ready"  # type: ignore[attr-defined]


def test_max_surge_replaces_several_at_once() -> None:
    master, sid = running(5, reload="replace", max_surge=2)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    assert len([p for p in master.alive if p not in old.values()]) == 2
    assert len(steps(master, "replacing")) == 2


def test_signal_mode_is_the_default_and_unchanged() -> None:
    master, sid = running(2)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    assert master.of_type(sv.ReloadWorkers)[0].pids == tuple(old.values())  # type: ignore[attr-defined]
    assert not master.of_type(sv.SpawnWorker)


def test_a_replacement_that_dies_before_starting_aborts_and_keeps_the_old_worker() -> None:
    master, sid = running(3, reload="replace")
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    master.feed(sv.WorkerStarted(max(master.alive)))  # worker 0 replaced
    broken = max(master.alive)  # worker 1's replacement
    assert master.alive[broken][1] == 1
    master.die(broken, 1)
    (aborted,) = steps(master, "aborted")
    assert (aborted.worker_id, aborted.old_pid, aborted.new_pid) == (1, old[1], broken)
    assert "exited with 1 before it started" in aborted.reason
    assert master.workers_of(sid)[1] == old[1]
    assert master.workers_of(sid)[2] == old[2]  # never touched
    assert old[1] not in master.signalled
    assert old[2] not in master.signalled
    forks = len(master.of_type(sv.SpawnWorker))
    master.advance(120)
    assert len(master.of_type(sv.SpawnWorker)) == forks  # no retry loop
    # The reload is over (aborted): READY again.
    assert [a.kind for a in master.of_type(sv.Notify)][-1] == "ready"  # type: ignore[attr-defined]
    # The old worker, back in its slot, is an ordinary worker again: respawned if it dies.
    master.die(old[1], 1)
    assert len(master.of_type(sv.SpawnWorker)) == forks + 1


def test_a_replacement_that_never_starts_is_stopped_after_the_timeout() -> None:
    master, sid = running(2, reload="replace", start_timeout=10)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    stuck = max(master.alive)
    master.advance(9.9)
    assert not steps(master, "aborted")
    master.advance(0.2)
    (aborted,) = steps(master, "aborted")
    assert "did not start within 10s" in aborted.reason
    assert master.signalled[stuck] == ["TERM"]
    assert master.workers_of(sid) == old
    forks = len(master.of_type(sv.SpawnWorker))
    master.die(stuck, -9)
    assert len(master.of_type(sv.SpawnWorker)) == forks  # its exit is not a crash


def test_a_worker_asking_to_be_replaced_is_replaced_alone() -> None:
    master, sid = running(3)  # any service: recycling does not need reload="replace"
    old = master.workers_of(sid)
    master.feed(sv.ReplacementAsked(old[1], "max-requests 1000"))
    (replacing,) = steps(master, "replacing")
    assert (replacing.worker_id, replacing.reason) == (1, "max-requests 1000")
    new = max(master.alive)
    master.feed(sv.WorkerStarted(new))
    assert master.signalled == {old[1]: ["TERM"]}
    assert not master.of_type(sv.Notify) or all(
        a.kind == "status"  # type: ignore[attr-defined]
        for a in master.of_type(sv.Notify)
    )
    # Asking twice, or asking while on the way out, does nothing more.
    master.feed(sv.ReplacementAsked(old[1], "again"))
    assert len(steps(master, "replacing")) == 1


def test_old_worker_dying_during_its_replacement_is_not_restarted() -> None:
    master, sid = running(2, reload="replace")
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    new0 = max(master.alive)
    forks = len(master.of_type(sv.SpawnWorker))
    master.die(old[0], -9)
    # Not restarted (its slot has its replacement already); the surge it held is free,
    # so worker 1's replacement begins, with its old worker still serving.
    spawned = master.of_type(sv.SpawnWorker)[forks:]
    assert [a.worker_id for a in spawned] == [1]  # type: ignore[attr-defined]
    assert master.workers_of(sid)[0] == new0
    master.feed(sv.WorkerStarted(new0))
    assert old[1] not in master.signalled
    master.feed(sv.WorkerStarted(max(master.alive)))
    assert master.signalled[old[1]] == ["TERM"]
    assert steps(master, "done")


def test_sigterm_during_a_replacement_stops_old_and_new() -> None:
    master, sid = running(2, reload="replace")
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    new0 = max(master.alive)
    master.feed(sv.StopRequested())
    (stop,) = master.of_type(sv.StopWorkers)
    assert set(stop.pids) == {*old.values(), new0}  # type: ignore[attr-defined]
    for pid in list(master.alive):
        master.die(pid)
    assert master.exit_code == 0
    assert len(master.of_type(sv.SpawnWorker)) == 1  # the replacement, nothing after


def test_scale_down_during_a_replacement_stops_the_outgoing_worker() -> None:
    master, sid = running(3, reload="replace", max_surge=3)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    master.feed(sv.Reconfigured(sid, 1))
    for wid in (1, 2):
        assert master.signalled[old[wid]] == ["TERM"]
    assert old[0] not in master.signalled


def test_a_second_sighup_during_a_replacement_replaces_again() -> None:
    master, _ = running(2, reload="replace")
    master.feed(sv.ReloadRequested())
    master.feed(sv.WorkerStarted(max(master.alive)))  # worker 0 replaced
    master.feed(sv.ReloadRequested())  # new code again: worker 0 must be replaced again
    for _ in range(3):
        master.feed(sv.WorkerStarted(max(master.alive)))
    replaced = [s.worker_id for s in steps(master, "replaced")]
    assert sorted(replaced) == [0, 0, 1, 1]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_surge must be an int >= 1, not: 0"):
        ReplacePolicy(max_surge=0)
    with pytest.raises(TypeError, match="max_surge must be an int"):
        ReplacePolicy(max_surge=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_timeout must be > 0"):
        ReplacePolicy(start_timeout=0)


def test_queue_bookkeeping() -> None:
    rep = Replacement(ReplacePolicy(max_surge=1))
    rep.request([WorkerId(0), WorkerId(1)], "reload")
    rep.request([WorkerId(1)], "max-age")
    assert rep.queue == [0, 1]
    assert rep.reasons == {0: "reload", 1: "reload"}
    assert rep.next_worker() == 0
    rep.begin(WorkerId(0), 10)
    assert rep.next_worker() is None  # surge limit
    assert rep.finish(WorkerId(0)) == (10, "reload")
    assert rep.next_worker() == 1


events = st.lists(
    st.one_of(
        st.just(("reload",)),
        st.tuples(st.just("start"), st.integers(0, 20)),
        st.tuples(st.just("die"), st.integers(0, 20), st.sampled_from([0, 1, -9])),
        st.tuples(st.just("ask"), st.integers(0, 20)),
        st.tuples(st.just("tick"), st.floats(0, 40)),
        st.tuples(st.just("scale"), st.integers(1, 4)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(workers=st.integers(1, 4), surge=st.integers(1, 3), script=events)
def test_any_sequence_keeps_the_invariants(
    workers: int, surge: int, script: list[tuple[object, ...]]
) -> None:
    master = FakeMaster()
    sid = master.add(workers, reload="replace", max_surge=surge, start_timeout=30)
    master.start()
    configured = workers
    for step in script:
        pids = sorted(master.alive)
        if step[0] == "reload":
            master.feed(sv.ReloadRequested())
        elif step[0] == "tick":
            master.advance(float(step[1]))  # type: ignore[arg-type]
        elif step[0] == "scale":
            configured = int(step[1])  # type: ignore[call-overload]
            master.feed(sv.Reconfigured(sid, configured))
        elif pids:
            pid = pids[int(step[1]) % len(pids)]  # type: ignore[call-overload]
            if step[0] == "start":
                master.feed(sv.WorkerStarted(pid))
            elif step[0] == "ask":
                master.feed(sv.ReplacementAsked(pid, "test"))
            else:
                master.die(pid, int(step[2]))  # type: ignore[call-overload]
        rep = master.sup._services[sid].replacement
        # Never more than max_surge replacements at once.
        assert len(rep.outgoing) <= surge
        # An old worker of a replacement is alive and was not told to stop yet.
        for old in rep.outgoing.values():
            assert old in master.alive
            assert "TERM" not in master.signalled.get(old, [])
        # Every slot holds a live process, and no slot beyond the configured count.
        for wid, pid in master.workers_of(sid).items():
            assert pid in master.alive
            assert wid < configured
        # A process told to stop is in no slot.
        stopped = {pid for pid, sigs in master.signalled.items() if "TERM" in sigs}
        assert not stopped & set(master.workers_of(sid).values())


def test_a_reload_with_an_aborted_replacement_does_not_end_as_complete() -> None:
    master, _ = running(2, reload="replace")
    master.feed(sv.ReloadRequested())
    master.die(max(master.alive), 1)  # worker 0's replacement fails: the reload stops
    assert [(s.kind, s.reason) for s in steps(master, "done")] == [("done", "aborted")]
    master.actions.clear()
    master.feed(sv.ReloadRequested())  # the next reload goes through: complete again
    for _ in range(2):
        master.feed(sv.WorkerStarted(max(master.alive)))
    assert [(s.kind, s.reason) for s in steps(master, "done")] == [("done", "")]


# -- a spawner that prepares the reload first (cotyledon.wsgi's zygote) ----------------------


def test_prepared_reload_waits_for_the_spawner_before_replacing() -> None:
    master, sid = running(2, reload="replace", prepare=True)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    assert master.of_type(sv.PrepareReload) == [sv.PrepareReload(sid)]
    assert not master.of_type(sv.SpawnWorker)  # nothing forked before the new code loaded
    assert not steps(master, "done")
    assert not [a for a in master.of_type(sv.Notify) if a.kind == "ready"]  # type: ignore[attr-defined]
    master.feed(sv.ReloadPrepared(sid))
    assert [s.worker_id for s in steps(master, "replacing")] == [0]
    for _ in range(2):
        master.feed(sv.WorkerStarted(max(master.alive)))
    assert sorted(s.old_pid for s in steps(master, "replaced")) == sorted(old.values())
    assert steps(master, "done") == [sv.ReplaceStep("done", sid)]
    assert [a.kind for a in master.of_type(sv.Notify)][-1] == "ready"  # type: ignore[attr-defined]


def test_failed_preparation_aborts_the_reload_and_keeps_every_worker() -> None:
    master, sid = running(2, reload="replace", prepare=True)
    old = master.workers_of(sid)
    master.feed(sv.ReloadRequested())
    master.feed(sv.ReloadPrepared(sid, "syntax error in app.py:3"))
    aborted = steps(master, "aborted")
    assert aborted == [sv.ReplaceStep("aborted", sid, reason="syntax error in app.py:3")]
    assert steps(master, "done") == [sv.ReplaceStep("done", sid, reason="aborted")]
    assert not master.of_type(sv.SpawnWorker)
    assert master.workers_of(sid) == old
    assert not master.signalled
    assert [a.kind for a in master.of_type(sv.Notify)][-1] == "ready"  # type: ignore[attr-defined]
    # A later SIGHUP tries again.
    master.actions.clear()
    master.feed(sv.ReloadRequested())
    assert master.of_type(sv.PrepareReload) == [sv.PrepareReload(sid)]


def test_an_answer_after_stop_or_unasked_is_ignored() -> None:
    master, sid = running(1, reload="replace", prepare=True)
    assert master.feed(sv.ReloadPrepared(sid)) == []  # nobody asked
    master.feed(sv.ReloadRequested())
    master.feed(sv.StopRequested())
    assert master.feed(sv.ReloadPrepared(sid)) == []
    assert not master.of_type(sv.SpawnWorker)


def test_prepare_is_only_for_replaced_services() -> None:
    master, _ = running(1, reload="signal", prepare=True)
    master.feed(sv.ReloadRequested())
    assert not master.of_type(sv.PrepareReload)
    assert master.of_type(sv.ReloadWorkers)[0].pids  # type: ignore[attr-defined]
