"""Tests for cotyledon.wsgi._scoreboard: a real forked child writes, the parent reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest

from cotyledon.wsgi._scoreboard import (
    LATENCY_BUCKETS,
    SLOT_SIZE,
    STATUS_CLASSES,
    Scoreboard,
    SlotStatus,
)
from tests.support.processes import wait_for


@pytest.fixture
def board() -> Iterator[Scoreboard]:
    scoreboard = Scoreboard(4)
    yield scoreboard
    scoreboard.close()


def _fork(child: Callable[[], None]) -> int:
    """Fork a child that runs ``child`` then exits 0 (1 on any exception)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    return pid


def _wait_ok(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_slots_are_cache_line_multiples() -> None:
    assert SLOT_SIZE % 64 == 0


def test_claim_resets_to_booting_and_release_frees(board: Scoreboard) -> None:
    index = board.claim(generation=3)
    stats = board.read(index)
    assert stats.status is SlotStatus.BOOTING
    assert stats.generation == 3
    assert stats.pid == 0
    assert stats.started_at > 0
    assert stats.last_heartbeat == stats.started_at
    assert [s.index for s in board.read_all()] == [index]
    board.release(index)
    assert board.read(index).status is SlotStatus.EMPTY
    assert board.read_all() == []


def test_full_board_raises(board: Scoreboard) -> None:
    for generation in range(4):
        board.claim(generation)
    with pytest.raises(RuntimeError, match="scoreboard full: all 4 slots are in use"):
        board.claim(9)


def test_invalid_capacity() -> None:
    with pytest.raises(ValueError, match="'capacity' must be an int >= 1, not: 0 \\(int\\)"):
        Scoreboard(0)


@pytest.mark.timeout(60)
def test_forked_child_writes_parent_reads(board: Scoreboard) -> None:
    index = board.claim(generation=7)
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()

    def child() -> None:
        writer = board.writer(index)
        writer.set_status(SlotStatus.READY)
        for duration, code in [(0.001, 200), (0.2, 404), (30.0, 503), (0.06, 301)]:
            writer.request_started()
            writer.request_finished(duration, code)
        writer.request_started()  # one left in flight
        os.write(to_parent_w, b"w")
        os.read(to_child_r, 1)  # stay alive until the parent has looked

    pid = _fork(child)
    try:
        assert os.read(to_parent_r, 1) == b"w"
        stats = board.read(index)
    finally:
        os.write(to_child_w, b"x")
        _wait_ok(pid)
        for fd in (to_parent_r, to_parent_w, to_child_r, to_child_w):
            os.close(fd)
    assert stats.pid == pid
    assert stats.generation == 7
    assert stats.status is SlotStatus.READY
    assert stats.requests == 4
    assert stats.in_flight == 1
    assert stats.latency_sum == pytest.approx(30.261)
    assert dict(zip(STATUS_CLASSES, stats.status_classes, strict=True)) == {
        "1xx": 0,
        "2xx": 1,
        "3xx": 1,
        "4xx": 1,
        "5xx": 1,
    }
    expected = [0] * (len(LATENCY_BUCKETS) + 1)
    expected[LATENCY_BUCKETS.index(0.005)] += 1  # 0.001
    expected[LATENCY_BUCKETS.index(0.25)] += 1  # 0.2
    expected[LATENCY_BUCKETS.index(0.075)] += 1  # 0.06
    expected[-1] += 1  # 30 s: +Inf
    assert list(stats.buckets) == expected
    assert stats.last_heartbeat >= stats.started_at


@pytest.mark.timeout(60)
def test_heartbeat_is_seen_by_the_parent(board: Scoreboard) -> None:
    index = board.claim(generation=1)
    first = board.read(index).last_heartbeat
    pid = _fork(lambda: board.writer(index).heartbeat())
    _wait_ok(pid)
    assert board.read(index).last_heartbeat > first


@pytest.mark.timeout(60)
def test_threads_in_one_worker_lose_no_update(board: Scoreboard) -> None:
    index = board.claim(generation=1)

    def child() -> None:
        writer = board.writer(index)

        def serve() -> None:
            for _ in range(2000):
                writer.request_started()
                writer.request_finished(0.01, 200)

        threads = [threading.Thread(target=serve) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    _wait_ok(_fork(child))
    stats = board.read(index)
    assert stats.requests == 8000
    assert stats.in_flight == 0
    assert sum(stats.buckets) == 8000
    assert stats.status_classes[1] == 8000


@pytest.mark.timeout(90)
def test_reader_never_sees_a_half_written_request(board: Scoreboard) -> None:
    """While a child writes as fast as it can, every read is self-consistent."""
    index = board.claim(generation=1)
    total = 100_000

    def child() -> None:
        writer = board.writer(index)
        for i in range(total):
            writer.request_started()
            writer.request_finished(0.001 * (i % 50), 200 + (i % 4) * 100)

    pid = _fork(child)
    reads = 0
    seen_progress = set()
    try:
        while True:
            stats = board.read(index)
            reads += 1
            assert sum(stats.buckets) == stats.requests
            assert sum(stats.status_classes) == stats.requests
            seen_progress.add(stats.requests)
            if stats.requests == total:
                break
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                assert board.read(index).requests == total
                break
    finally:
        if pid:
            _wait_ok(pid)
    assert reads > 0
    assert board.read(index).requests == total


def test_release_folds_counters_into_retired_totals(board: Scoreboard) -> None:
    first = board.claim(generation=1)
    second = board.claim(generation=1)

    def child(index: int, n: int) -> Callable[[], None]:
        def run() -> None:
            writer = board.writer(index)
            for _ in range(n):
                writer.request_started()
                writer.request_finished(0.02, 200)

        return run

    _wait_ok(_fork(child(first, 3)))
    _wait_ok(_fork(child(second, 5)))
    assert board.totals().requests == 8
    final = board.release(first)
    assert final.requests == 3
    assert board.retired.requests == 3
    totals = board.totals()
    assert totals.requests == 8
    assert sum(totals.buckets) == 8
    assert totals.latency_sum == pytest.approx(0.16)
    # The slot is reused from zero; retired totals keep counting.
    again = board.claim(generation=2)
    assert again == first
    assert board.read(again).requests == 0
    assert board.totals().requests == 8


def test_wait_for_heartbeat_progress(board: Scoreboard) -> None:
    """A writer in this process moves the heartbeat forward (monotonic clock)."""
    index = board.claim(generation=1)
    writer = board.writer(index, pid=4242)
    start = board.read(index).last_heartbeat

    def moved() -> bool:
        writer.heartbeat()
        return board.read(index).last_heartbeat > start

    wait_for(moved, what="heartbeat to move forward")
    assert board.read(index).pid == 4242
