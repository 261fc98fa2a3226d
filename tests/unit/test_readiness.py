"""The stop sequence and /readyz as data (cotyledon.wsgi._readiness), with a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotyledon.wsgi._config import ConfigError, make_config
from cotyledon.wsgi._readiness import StopPhase, StopPlan, readiness, status_line


def test_no_stop_requested_is_serving_forever() -> None:
    plan = StopPlan(delay=5.0)
    assert plan.phase(0.0) is StopPhase.SERVING
    assert plan.phase(1e9) is StopPhase.SERVING


def test_the_delay_comes_first_then_draining() -> None:
    plan = StopPlan(delay=5.0).requested(100.0)
    assert plan.phase(100.0) is StopPhase.DELAYING
    assert plan.phase(104.999) is StopPhase.DELAYING
    assert plan.phase(105.0) is StopPhase.DRAINING
    assert plan.accept_until == 105.0


def test_no_delay_drains_at_once() -> None:
    assert StopPlan().requested(7.0).phase(7.0) is StopPhase.DRAINING


def test_a_second_request_does_not_push_the_deadline() -> None:
    plan = StopPlan(delay=5.0).requested(100.0).requested(103.0)
    assert plan.requested_at == 100.0
    assert plan.phase(105.0) is StopPhase.DRAINING


@given(
    delay=st.floats(0, 1e4),
    requested=st.floats(0, 1e6),
    later=st.floats(0, 2e4),
)
def test_phases_only_move_forward(delay: float, requested: float, later: float) -> None:
    plan = StopPlan(delay).requested(requested)
    order = [StopPhase.DELAYING, StopPhase.DRAINING]
    first, second = plan.phase(requested), plan.phase(requested + later)
    assert order.index(first) <= order.index(second)


def test_ready_needs_enough_workers_and_no_stop() -> None:
    assert readiness(StopPhase.SERVING, 2, 1).ready
    assert readiness(StopPhase.SERVING, 1, 1).ready
    below = readiness(StopPhase.SERVING, 1, 2)
    assert not below.ready
    assert below.reason == "1 of at least 2 workers ready"
    for phase in (StopPhase.DELAYING, StopPhase.DRAINING):
        stopping = readiness(phase, 4, 1)
        assert not stopping.ready
        assert stopping.as_json() == {
            "status": "not ready",
            "reason": "stopping",
            "phase": phase.value,
            "ready_workers": 4,
            "ready_min": 1,
        }


def test_status_lines_name_the_phase() -> None:
    plan = StopPlan(delay=5.0).requested(0.0)
    assert "serving for 3.0s (--shutdown-delay)" in status_line(plan, 2.0, 3)
    assert status_line(plan, 6.0, 1).endswith("finishing 1 in-flight request")
    assert status_line(plan, 6.0, 2).endswith("finishing 2 in-flight requests")


def test_a_delay_longer_than_the_graceful_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="longer than --graceful-timeout") as info:
        make_config(shutdown_delay=40, graceful_timeout=30)
    assert info.value.option == "shutdown_delay"
    assert make_config(shutdown_delay=30, graceful_timeout=30).shutdown_delay == 30


@pytest.mark.parametrize("value", [-1, float("nan"), "5"])
def test_bad_delays_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="shutdown_delay"):
        make_config(shutdown_delay=value)


def test_ready_min_above_the_workers_is_refused() -> None:
    with pytest.raises(ConfigError, match="would never answer 200"):
        make_config(workers=2, ready_min=3)
