"""The request body deadline (idle, total, minimum rate, paused while the app works),
driven by a fake clock."""

from __future__ import annotations

import math

import pytest

from cotyledon.wsgi._body_deadline import BodyDeadline


def test_idle_alone_is_the_wait_for_each_piece() -> None:
    deadline = BodyDeadline(100.0, idle=10.0)
    assert deadline.expires_at() == 110.0
    deadline.add(1, 109.0)
    assert deadline.expires_at() == 119.0
    assert not deadline.expired(118.9)
    assert deadline.expired(119.0)


def test_total_caps_a_body_that_keeps_coming() -> None:
    deadline = BodyDeadline(0.0, idle=10.0, total=30.0)
    for second in range(1, 40):
        deadline.add(1_000_000, float(second))
        if deadline.expired(float(second)):
            break
    assert second == 30


def test_a_drip_is_cut_off_after_the_grace_at_the_minimum_rate() -> None:
    # One byte every 5 s never trips the idle limit of 10 s; the rate does.
    deadline = BodyDeadline(0.0, idle=10.0, min_rate=1024.0)
    now = 0.0
    while not deadline.expired(now):
        now += 5.0
        deadline.add(1, now)
    assert now == 15.0  # 10 s of grace, then about 1 ms per byte received


def test_a_steady_upload_above_the_rate_goes_on() -> None:
    deadline = BodyDeadline(0.0, idle=10.0, min_rate=1024.0)
    for second in range(1, 600):
        deadline.add(2048, float(second))
        assert not deadline.expired(float(second) + 0.5)


def test_pause_does_not_count_the_apps_time() -> None:
    deadline = BodyDeadline(0.0, idle=10.0, total=20.0, min_rate=100.0)
    deadline.add(500, 2.0)
    deadline.pause(5.0)
    assert deadline.expires_at() == math.inf
    assert deadline.remaining(1000.0) == math.inf
    deadline.resume(65.0)  # the app worked for 60 s: the client is not late
    assert deadline.expires_at() == 60.0 + min(2.0 + 10.0, 20.0, 10.0 + 5.0)
    deadline.pause(70.0)
    deadline.pause(80.0)  # a second pause keeps the first start
    deadline.resume(90.0)
    assert deadline.expires_at() == 80.0 + 12.0


@pytest.mark.parametrize("count", [0, -5])
def test_nothing_received_is_no_progress(count: int) -> None:
    deadline = BodyDeadline(0.0, idle=1.0)
    deadline.add(count, 0.9)
    assert deadline.received == 0
    assert deadline.remaining(0.5) == 0.5
    assert deadline.remaining(2.0) == 0.0
