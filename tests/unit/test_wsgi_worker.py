"""Pure pieces of the worker: the pool's rejection rule and the cached Date header."""

from __future__ import annotations

import email.utils

import futurist
import pytest

from cotyledon.wsgi._config import make_config
from cotyledon.wsgi._connection import DateCache
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus
from cotyledon.wsgi._worker import _rejector, _sibling_has_room


class FakePool:
    def __init__(self, max_workers: int, started: int, idle: int) -> None:
        self._max_workers = max_workers
        self.num_workers = started
        self._idle = idle

    def get_num_idle_workers(self) -> int:
        return self._idle


@pytest.mark.parametrize(
    ("max_queue", "pool", "backlog", "rejected"),
    [
        (0, FakePool(4, 4, 0), 0, True),  # every thread busy, no queue allowed
        (0, FakePool(4, 4, 1), 0, False),  # an idle thread takes it
        (0, FakePool(4, 2, 0), 1, False),  # threads not started yet count as capacity
        (0, FakePool(4, 2, 0), 2, True),
        (2, FakePool(4, 4, 0), 1, False),  # room left in the queue
        (2, FakePool(4, 4, 0), 2, True),
    ],
)
def test_rejector(max_queue: int, pool: FakePool, backlog: int, rejected: bool) -> None:
    check = _rejector(max_queue)
    if rejected:
        with pytest.raises(futurist.RejectedSubmission):
            check(pool, backlog)
    else:
        check(pool, backlog)


class FakeTime:
    now = 1_700_000_000.25

    @classmethod
    def time(cls) -> float:
        return cls.now


def test_date_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cotyledon.wsgi._connection.time", FakeTime)
    cache = DateCache()
    first = cache.get()
    assert first == b"Tue, 14 Nov 2023 22:13:20 GMT"
    FakeTime.now += 0.5
    assert cache.get() is first  # formatted once per second, not per request
    FakeTime.now += 1
    assert cache.get() == b"Tue, 14 Nov 2023 22:13:21 GMT"
    assert email.utils.parsedate_to_datetime(cache.get().decode()).tzinfo is not None


def test_sibling_has_room_reads_the_other_workers_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    board = Scoreboard(4, clock=lambda: now[0])
    own, sibling, booting = board.claim(1), board.claim(1), board.claim(1)
    monkeypatch.setattr("cotyledon.wsgi._master.assigned_slot", own)
    config = make_config(threads=2, timeout=4.0)
    check = _sibling_has_room(board, config, clock=lambda: now[0])
    assert not check()  # the others are still booting
    board.writer(sibling, pid=42).set_status(SlotStatus.READY)
    assert check()
    writer = board.writer(sibling, pid=42)
    writer.request_started()
    writer.request_started()
    assert not check()  # both of its threads are busy
    writer.request_finished(0.1, 200)
    assert check()
    now[0] += 2.5  # past timeout / 2 with no heartbeat: maybe hung, not a place to go
    assert not check()
    writer.heartbeat()
    assert check()
    board.writer(own, pid=41).set_status(SlotStatus.READY)  # its own row never counts
    writer.request_started()
    assert not check()
    assert board.read(booting).status is SlotStatus.BOOTING
