"""The worker-side recycler: asks once, for the right reason, and wakes only when needed."""

from __future__ import annotations

import random
import threading

import pytest

from cotyledon.wsgi._config import ConfigError, _parse_size, make_config
from cotyledon.wsgi._recycler import Recycler
from cotyledon.wsgi._recycling import RecyclePolicy

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(policy: RecyclePolicy, **kwargs: object) -> tuple[Recycler, list[str], Clock]:
    asked: list[str] = []
    clock = Clock()

    def ask(reason: str) -> bool:
        asked.append(reason)
        return True

    recycler = Recycler(policy, ask=ask, clock=clock, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    return recycler, asked, clock


def test_max_requests_asks_once_at_the_limit() -> None:
    recycler, asked, _ = make(RecyclePolicy(max_requests=3))
    for _ in range(2):
        recycler.request_done()
    assert asked == []
    recycler.request_done()
    assert asked == ["max_requests: served 3 requests >= limit 3"]
    for _ in range(5):
        recycler.request_done()
    assert len(asked) == 1


def test_jitter_is_drawn_once_per_worker_within_bounds() -> None:
    limits = {
        Recycler(
            RecyclePolicy(max_requests=100, max_requests_jitter=20), rng=random.Random(n)
        ).limits.max_requests
        for n in range(50)
    }
    assert len(limits) > 5
    assert all(limit is not None and 100 <= limit <= 120 for limit in limits)


def test_max_age_from_the_check() -> None:
    recycler, asked, clock = make(RecyclePolicy(max_age=10))
    assert recycler.check() is None
    clock.now += 10.5
    decision = recycler.check()
    assert decision is not None
    assert asked == ["max_age: age 10.5s >= limit 10.0s"]


def test_max_memory_from_the_measure() -> None:
    recycler, asked, _ = make(RecyclePolicy(max_memory=100 << 20))
    assert recycler.check(memory=50 << 20) is None
    recycler.check(memory=150 << 20)
    assert asked == ["max_memory: memory 150.0 MiB > limit 100.0 MiB"]


def test_no_limit_no_thread_and_never_asks() -> None:
    recycler, asked, clock = make(RecyclePolicy())
    assert not recycler.enabled
    recycler.start()
    assert recycler._thread is None
    clock.now += 1e6
    for _ in range(1000):
        recycler.request_done()
    assert asked == []


def test_the_watch_thread_measures_memory_and_stops() -> None:
    measured = threading.Event()

    def measure() -> int:
        measured.set()
        return 1 << 40

    recycler, asked, _ = make(
        RecyclePolicy(max_memory=1 << 30), memory_check_interval=0.01, measure=measure
    )
    recycler.start()
    assert measured.wait(10)
    assert recycler._thread is not None
    recycler._thread.join(10)  # it stops by itself once it has asked
    assert not recycler._thread.is_alive()
    assert asked[0].startswith("max_memory: ")


def test_no_master_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    recycler = Recycler(RecyclePolicy(max_requests=1), ask=lambda reason: False)
    recycler.request_done()
    assert "no master to ask for a replacement" in caplog.text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1048576", 1 << 20),
        ("512M", 512 << 20),
        ("512MiB", 512 << 20),
        ("512mb", 512 << 20),
        ("1G", 1 << 30),
        ("1.5g", 3 << 29),
        ("64k", 64 << 10),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert _parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "lots", "-1G", "1T", "nan", "inf"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="must be a size such as 512M or 1G"):
        _parse_size(text)


def test_lifecycle_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_surge: must be an int >= 1"):
        make_config(max_surge=0)
    with pytest.raises(ConfigError, match="status_port: must be a port number"):
        make_config(status_port=70000)
    with pytest.raises(ConfigError, match="max_requests: must be an int >= 0"):
        make_config(max_requests=-1)
