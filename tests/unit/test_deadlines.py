"""Named deadlines: the master's only source of wake-ups."""

from __future__ import annotations

from cotyledon._deadlines import Deadlines


def test_no_deadline_means_no_timeout() -> None:
    assert Deadlines().next_timeout(100.0) is None


def test_next_timeout_is_the_earliest_and_never_negative() -> None:
    d = Deadlines()
    d.set("a", 10.0)
    d.set("b", 5.0)
    assert d.next_timeout(1.0) == 4.0
    assert d.next_timeout(7.0) == 0.0


def test_pop_due_returns_passed_deadlines_in_time_order() -> None:
    d = Deadlines()
    d.set("late", 3.0)
    d.set("early", 1.0)
    d.set("future", 9.0)
    assert d.pop_due(5.0) == ["early", "late"]
    assert "future" in d
    assert d.pop_due(5.0) == []
    assert len(d) == 1


def test_set_earliest_keeps_an_earlier_deadline() -> None:
    d = Deadlines()
    d.set_earliest("x", 5.0)
    d.set_earliest("x", 8.0)
    assert d.get("x") == 5.0
    d.set_earliest("x", 2.0)
    assert d.get("x") == 2.0
    d.cancel("x")
    assert d.get("x") is None
