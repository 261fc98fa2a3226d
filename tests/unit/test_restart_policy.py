"""The respawn budget: upstream's rate limit as a per-service deadline, and give-up."""

from __future__ import annotations

import pytest

from cotyledon._restart_policy import DEFAULT_PAUSE, GiveUpPolicy, RestartBudget


def test_n_plus_one_restarts_within_n_seconds_are_free() -> None:
    budget = RestartBudget(workers=2)
    for t in (0.0, 0.0, 0.1):
        assert budget.next_fork_at(t) == t
        budget.record_fork(t)


def test_forking_too_fast_pauses_then_allows_one_fork() -> None:
    budget = RestartBudget(workers=1)
    budget.record_fork(0.0)
    budget.record_fork(0.1)
    assert budget.next_fork_at(0.2) == 0.2 + DEFAULT_PAUSE
    budget.pause_until(5.2)
    assert budget.paused_until == 5.2
    assert budget.next_fork_at(3.0) == 5.2  # still paused
    assert budget.next_fork_at(5.2) == 5.2  # the pause ended: go
    budget.record_fork(5.2)
    assert budget.paused_until is None
    assert budget.next_fork_at(5.3) == 5.3  # a fresh window after a pause


def test_old_forks_leave_the_window() -> None:
    budget = RestartBudget(workers=1)
    budget.record_fork(0.0)
    budget.record_fork(0.5)
    assert budget.next_fork_at(0.9) > 0.9
    assert budget.next_fork_at(1.1) == 1.1  # the fork at 0.0 is more than 1 s old


def test_clear_and_resize_forget_the_history() -> None:
    budget = RestartBudget(workers=1)
    budget.record_fork(0.0)
    budget.record_fork(0.0)
    budget.pause_until(5.0)
    budget.clear()
    assert budget.next_fork_at(0.1) == 0.1
    budget.record_fork(0.1)
    budget.record_fork(0.1)
    budget.resize(3)
    assert budget.limit == 4
    assert budget.window == 3.0
    assert budget.next_fork_at(0.2) == 0.2


def test_no_give_up_by_default() -> None:
    budget = RestartBudget(workers=1)
    assert not any(budget.record_restart(float(t)) for t in range(1000))


def test_give_up_after_more_than_max_restarts_in_period() -> None:
    budget = RestartBudget(workers=1, give_up=GiveUpPolicy(max_restarts=2, period=10.0))
    assert not budget.record_restart(0.0)
    assert not budget.record_restart(1.0)
    assert budget.record_restart(2.0)


def test_restarts_outside_the_period_do_not_count() -> None:
    budget = RestartBudget(workers=1, give_up=GiveUpPolicy(max_restarts=1, period=1.0))
    assert not budget.record_restart(0.0)
    assert not budget.record_restart(1.5)
    assert not budget.record_restart(3.0)
    assert budget.record_restart(3.5)


@pytest.mark.parametrize(
    ("max_restarts", "period", "error"),
    [(-1, 1.0, ValueError), (1, 0, ValueError), ("3", 1.0, TypeError), (True, 1.0, TypeError)],
)
def test_give_up_policy_is_validated(max_restarts: object, period: object, error: type) -> None:
    with pytest.raises(error):
        GiveUpPolicy(max_restarts, period)  # type: ignore[arg-type]
