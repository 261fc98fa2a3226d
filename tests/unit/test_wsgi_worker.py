"""Pure pieces of the worker: the pool's rejection rule and the cached Date header."""

from __future__ import annotations

import email.utils

import futurist
import pytest

from cotyledon.wsgi._connection import DateCache
from cotyledon.wsgi._worker import _rejector


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
