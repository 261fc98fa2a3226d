"""Unit tests for cotyledon.wsgi._hung (pure: times are plain numbers)."""

from __future__ import annotations

from cotyledon.wsgi._hung import Heartbeat, Hung, find_hung, next_check


def test_silent_worker_is_hung_fresh_one_is_not() -> None:
    beats = [Heartbeat(pid=10, last_heartbeat=100.0), Heartbeat(pid=11, last_heartbeat=125.0)]
    assert find_hung(beats, now=131.0, timeout=30.0) == [
        Hung(pid=10, silent_for=31.0, limit=30.0, booting=False)
    ]


def test_exactly_at_the_limit_is_not_hung() -> None:
    assert find_hung([Heartbeat(1, 100.0)], now=130.0, timeout=30.0) == []


def test_zero_timeout_disables_detection() -> None:
    assert find_hung([Heartbeat(1, 0.0)], now=1e9, timeout=0) == []
    assert next_check([Heartbeat(1, 0.0)], timeout=0) is None


def test_draining_and_empty_slots_are_ignored() -> None:
    beats = [Heartbeat(1, 0.0, draining=True), Heartbeat(0, 0.0)]
    assert find_hung(beats, now=1e6, timeout=1.0) == []


def test_boot_timeout_applies_while_booting() -> None:
    beats = [Heartbeat(1, 0.0, booting=True), Heartbeat(2, 0.0)]
    hung = find_hung(beats, now=40.0, timeout=30.0, boot_timeout=120.0)
    assert [h.pid for h in hung] == [2]
    hung = find_hung(beats, now=121.0, timeout=30.0, boot_timeout=120.0)
    assert [(h.pid, h.booting, h.limit) for h in hung] == [(1, True, 120.0), (2, False, 30.0)]


def test_boot_timeout_defaults_to_timeout() -> None:
    assert [h.pid for h in find_hung([Heartbeat(1, 0.0, booting=True)], 31.0, 30.0)] == [1]


def test_next_check_is_the_earliest_expiry() -> None:
    beats = [
        Heartbeat(1, 100.0),
        Heartbeat(2, 90.0, booting=True),
        Heartbeat(3, 50.0, draining=True),
    ]
    assert next_check(beats, timeout=30.0) == 120.0
    assert next_check(beats, timeout=30.0, boot_timeout=10.0) == 100.0
    assert next_check([], timeout=30.0) is None
