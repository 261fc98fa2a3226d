"""Unit tests for cotyledon.wsgi._recycling (pure: seeded random, no clock)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotyledon.wsgi._recycling import (
    RecyclePolicy,
    RecycleReason,
    WorkerLimits,
    draw_limits,
    maybe_recycle,
)


def test_disabled_policy_never_recycles() -> None:
    limits = draw_limits(RecyclePolicy(), random.Random(1))
    assert limits == WorkerLimits()
    assert not RecyclePolicy().enabled
    assert maybe_recycle(limits, requests_served=10**9, age=1e9, memory=1 << 40) is None


def test_max_requests_without_jitter_is_exact() -> None:
    limits = draw_limits(RecyclePolicy(max_requests=100), random.Random(1))
    assert limits.max_requests == 100
    assert maybe_recycle(limits, requests_served=99, age=0, memory=None) is None
    decision = maybe_recycle(limits, requests_served=100, age=0, memory=None)
    assert decision is not None
    assert decision.reason is RecycleReason.MAX_REQUESTS
    assert decision.detail == "served 100 requests >= limit 100"


@given(seed=st.integers(0, 2**32), base=st.integers(1, 10_000), jitter=st.integers(0, 500))
def test_request_jitter_stays_in_range(seed: int, base: int, jitter: int) -> None:
    limits = draw_limits(
        RecyclePolicy(max_requests=base, max_requests_jitter=jitter), random.Random(seed)
    )
    assert limits.max_requests is not None
    assert base <= limits.max_requests <= base + jitter


@given(seed=st.integers(0, 2**32), base=st.floats(0.5, 1e5), jitter=st.floats(0, 1e4))
def test_age_jitter_stays_in_range(seed: int, base: float, jitter: float) -> None:
    limits = draw_limits(RecyclePolicy(max_age=base, max_age_jitter=jitter), random.Random(seed))
    assert limits.max_age is not None
    assert base <= limits.max_age <= base + jitter


def test_jitter_spreads_workers_apart() -> None:
    rng = random.Random(42)
    policy = RecyclePolicy(
        max_requests=1000, max_requests_jitter=100, max_age=60, max_age_jitter=30
    )
    drawn = [draw_limits(policy, rng) for _ in range(20)]
    assert len({d.max_requests for d in drawn}) > 5
    assert len({d.max_age for d in drawn}) > 5


def test_jitter_alone_does_not_recycle() -> None:
    limits = draw_limits(
        RecyclePolicy(max_requests_jitter=50, max_age_jitter=50), random.Random(3)
    )
    assert limits == WorkerLimits()


def test_max_age() -> None:
    limits = WorkerLimits(max_age=30.0)
    assert maybe_recycle(limits, requests_served=0, age=29.9, memory=None) is None
    decision = maybe_recycle(limits, requests_served=0, age=30.0, memory=None)
    assert decision is not None
    assert decision.reason is RecycleReason.MAX_AGE
    assert decision.detail == "age 30.0s >= limit 30.0s"


def test_max_memory_is_strictly_above() -> None:
    limits = WorkerLimits(max_memory=100 * 1024 * 1024)
    assert maybe_recycle(limits, requests_served=0, age=0, memory=100 * 1024 * 1024) is None
    decision = maybe_recycle(limits, requests_served=0, age=0, memory=150 * 1024 * 1024)
    assert decision is not None
    assert decision.reason is RecycleReason.MAX_MEMORY
    assert decision.detail == "memory 150.0 MiB > limit 100.0 MiB"


def test_unmeasured_memory_never_recycles() -> None:
    limits = WorkerLimits(max_memory=1)
    assert maybe_recycle(limits, requests_served=0, age=0, memory=None) is None


def test_memory_wins_then_requests_then_age() -> None:
    limits = WorkerLimits(max_requests=1, max_age=1.0, max_memory=1)
    everything = {"requests_served": 5, "age": 5.0}
    first = maybe_recycle(limits, memory=2, **everything)  # type: ignore[arg-type]
    assert first is not None
    assert first.reason is RecycleReason.MAX_MEMORY
    second = maybe_recycle(limits, memory=None, **everything)  # type: ignore[arg-type]
    assert second is not None
    assert second.reason is RecycleReason.MAX_REQUESTS
    third = maybe_recycle(limits, requests_served=0, age=5.0, memory=None)
    assert third is not None
    assert third.reason is RecycleReason.MAX_AGE


def test_reason_values_are_metric_labels() -> None:
    assert [r.value for r in RecycleReason] == ["max_requests", "max_age", "max_memory"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_requests": -1}, "'max_requests' must be an int >= 0, not: -1 (int)"),
        ({"max_requests": 1.5}, "'max_requests' must be an int >= 0, not: 1.5 (float)"),
        ({"max_age": -2.0}, "'max_age' must be a number >= 0, not: -2.0 (float)"),
        ({"max_age": True}, "'max_age' must be a number >= 0, not: True (bool)"),
        ({"max_age_jitter": "3"}, "'max_age_jitter' must be a number >= 0, not: '3' (str)"),
        ({"max_memory": True}, "'max_memory' must be an int >= 0, not: True (bool)"),
    ],
)
def test_invalid_policy_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        RecyclePolicy(**kwargs)  # type: ignore[arg-type]
