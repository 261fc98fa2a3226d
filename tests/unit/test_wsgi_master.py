"""The WSGI master extension with a fake clock and a fake kill: slots, hung workers, reasons."""

from __future__ import annotations

import signal
import uuid

import pytest

from cotyledon.types import ServiceId, WorkerId
from cotyledon.wsgi import _master
from cotyledon.wsgi._config import make_config
from cotyledon.wsgi._master import WSGIMaster
from cotyledon.wsgi._scoreboard import SlotStatus
from cotyledon.wsgi._stackdump import DUMP_GRACE, DUMP_SIGNAL

pytestmark = pytest.mark.timeout(30)
SID = ServiceId(uuid.uuid4())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**options: object) -> tuple[WSGIMaster, Clock, list[tuple[int, int]]]:
    clock = Clock()
    kills: list[tuple[int, int]] = []
    binds = ["http://127.0.0.1:8000"]
    config = make_config(**options)
    master = WSGIMaster(config, binds, clock=clock, kill=lambda p, s: kills.append((p, s)))
    master.service_id = SID
    return master, clock, kills


def fork(master: WSGIMaster, wid: int, pid: int, ready: bool = True) -> None:
    master.before_fork(SID, WorkerId(wid))
    index = _master.assigned_slot
    assert index is not None
    master.on_spawned(SID, WorkerId(wid), pid)
    writer = master.board.writer(index, pid)  # what the child does
    if ready:
        writer.set_status(SlotStatus.READY)


def test_other_services_are_ignored() -> None:
    master, _, _ = make()
    other = ServiceId(uuid.uuid4())
    master.before_fork(other, WorkerId(0))
    assert _master.assigned_slot is None
    master.on_spawned(other, WorkerId(0), 42)
    assert master.snapshot().workers == ()


def test_a_silent_worker_is_dumped_then_killed_once() -> None:
    master, clock, kills = make(workers=2, timeout=10)
    fork(master, 0, 100)
    fork(master, 1, 101)
    deadline = master.next_deadline()
    assert deadline == pytest.approx(clock.now + 10)
    clock.now += 10.5
    master.board.writer(master._workers[101].index, 101).heartbeat()  # 101 is alive
    master.on_tick(clock.now)
    assert kills == [(100, DUMP_SIGNAL), (100, signal.SIGCONT)]
    assert master.next_deadline() == pytest.approx(clock.now + DUMP_GRACE)
    clock.now += DUMP_GRACE
    master.on_tick(clock.now)
    master.on_tick(clock.now)
    assert kills[2:] == [(100, signal.SIGKILL)]
    master.on_exited(SID, WorkerId(0), 100, -9)
    fork(master, 0, 102)
    snapshot = master.snapshot()
    assert snapshot.restarts == (("hung", 1),)
    reasons = {row.pid: row.last_restart_reason for row in snapshot.workers}
    assert reasons == {101: None, 102: "hung"}


def test_timeout_zero_never_wakes_the_master() -> None:
    master, _, _ = make(timeout=0)
    fork(master, 0, 100)
    assert master.next_deadline() is None


def test_reasons_for_crashes_and_replacements() -> None:
    master, _, _ = make(workers=2)
    fork(master, 0, 100)
    fork(master, 1, 101)
    master.on_exited(SID, WorkerId(0), 100, 1)
    fork(master, 0, 102)
    master.on_replacing(SID, WorkerId(1), "max_requests: served 10 requests >= limit 10")
    fork(master, 1, 103)
    assert dict(master.snapshot().restarts) == {"crashed": 1}  # 103 has not started yet
    master.on_replaced(SID, WorkerId(1), 101)
    master.on_exited(SID, WorkerId(1), 101, 0)  # the replaced one leaves: not a crash
    snapshot = master.snapshot()
    assert dict(snapshot.restarts) == {"crashed": 1, "max_requests": 1}
    assert {row.pid for row in snapshot.workers} == {102, 103}


@pytest.mark.parametrize("how", ["new one died", "timed out"])
def test_an_aborted_replacement_counts_no_restart(how: str) -> None:
    master, _, _ = make(workers=1)
    fork(master, 0, 100)
    master.on_replacing(SID, WorkerId(0), "reload")
    fork(master, 0, 101, ready=False)
    if how == "new one died":  # the core reports the death, then the abort
        master.on_exited(SID, WorkerId(0), 101, 1)
        master.on_replace_aborted(SID, WorkerId(0), 100)
    else:  # the abort, then the new one stops on SIGTERM
        master.on_replace_aborted(SID, WorkerId(0), 100)
        master.on_exited(SID, WorkerId(0), 101, 0)
    snapshot = master.snapshot()
    assert dict(snapshot.restarts) == {}
    ((row),) = snapshot.workers
    assert (row.pid, row.last_restart_reason, row.last_restart_age) == (100, None, None)
    # The old process is the slot's again: its crash is counted and its successor shown.
    master.on_exited(SID, WorkerId(0), 100, -signal.SIGSEGV)
    fork(master, 0, 102)
    snapshot = master.snapshot()
    assert dict(snapshot.restarts) == {"crashed": 1}
    assert [(r.pid, r.last_restart_reason) for r in snapshot.workers] == [(102, "crashed")]


def test_abnormal_worker_deaths_are_logged_at_warning_or_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    master, _, _ = make(workers=2)
    for pid in (100, 101, 102, 103, 104):
        fork(master, pid % 2, pid)
    with caplog.at_level("WARNING", logger="cotyledon.wsgi.master"):
        master.on_exited(SID, WorkerId(0), 100, -signal.SIGSEGV)
        master.on_exited(SID, WorkerId(1), 101, 3)
        master.on_exited(SID, WorkerId(0), 102, 0)  # stopped on request: silent
        master.on_exited(SID, WorkerId(1), 103, -signal.SIGTERM)  # asked to stop: silent
        master.on_exited(SID, WorkerId(0), 104, -signal.SIGKILL)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "Worker 0 (pid 100) killed by signal SIGSEGV"),
        ("WARNING", "Worker 1 (pid 101) exited with status 3"),
        (
            "ERROR",
            "Worker 0 (pid 104) killed by signal SIGKILL (out of memory? killed from outside?)",
        ),
    ]


def test_a_fast_exit_logs_no_worker_death(caplog: pytest.LogCaptureFixture) -> None:
    master, _, _ = make(workers=1)
    fork(master, 0, 100)

    class Manager:
        _fast_exit = True  # SIGINT: the workers exit at once with status 1

    master.manager = Manager()
    with caplog.at_level("WARNING", logger="cotyledon.wsgi.master"):
        master.on_exited(SID, WorkerId(0), 100, 1)
    assert caplog.records == []


def test_scoreboard_slots_are_released_and_reused() -> None:
    master, _, _ = make(workers=1)
    for pid in range(100, 200):
        fork(master, 0, pid)
        master.on_exited(SID, WorkerId(0), pid, 0)
    assert master.board.read_all() == []


def test_sigttin_and_sigttou_resize_within_bounds(caplog: pytest.LogCaptureFixture) -> None:
    master, _, _ = make(workers=1)
    calls: list[int] = []

    class Manager:
        def reconfigure(self, service_id: ServiceId, workers: int) -> None:
            assert service_id == SID
            calls.append(workers)

    master.manager = Manager()
    master.on_signal(signal.SIGTTIN)
    master.on_signal(signal.SIGTTOU)
    master.on_signal(signal.SIGTTOU)
    assert calls == [2, 1]
    assert "Staying at 1 worker " in caplog.text


def test_a_failed_fork_gives_its_slot_back() -> None:
    master, _, _ = make(workers=1)
    for _ in range(100):  # fork fails: before_fork, then no on_spawned
        master.before_fork(SID, WorkerId(0))
    fork(master, 0, 100)
    assert [s.pid for s in master.board.read_all()] == [100]
