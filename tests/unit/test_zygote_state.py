"""The zygotes' bookkeeping (pure): which zygote forks, which loads a reload's code."""

from __future__ import annotations

from cotyledon.wsgi._zygote_state import Death, Zygotes


def started(pid: int = 10) -> Zygotes:
    zygotes = Zygotes()
    zygotes.started(pid)
    return zygotes


def test_the_first_zygote_forks_and_is_generation_one() -> None:
    zygotes = started()
    assert (zygotes.current, zygotes.loading, zygotes.generation) == (10, None, 1)
    assert zygotes.next_deadline() is None


def test_a_loaded_reload_zygote_becomes_current_and_the_old_one_retires() -> None:
    zygotes = started()
    assert zygotes.begin_reload(11, now=100.0, timeout=60.0) == []
    assert zygotes.current == 10  # still forks until the new code has loaded
    assert zygotes.next_deadline() == 160.0
    assert zygotes.loaded(11) == [10]
    assert (zygotes.current, zygotes.loading, zygotes.generation) == (11, None, 2)
    assert zygotes.next_deadline() is None
    assert zygotes.died(10) is Death.EXPECTED  # the retired one


def test_a_failed_load_aborts_and_keeps_the_current_zygote() -> None:
    zygotes = started()
    zygotes.begin_reload(11, now=0.0, timeout=5.0)
    assert zygotes.failed(11) is True
    assert (zygotes.current, zygotes.loading, zygotes.generation) == (10, None, 1)
    assert zygotes.failed(11) is False  # answered once
    assert zygotes.loaded(11) is None  # a late report is ignored


def test_a_loading_zygote_that_dies_aborts_the_reload() -> None:
    zygotes = started()
    zygotes.begin_reload(11, now=0.0, timeout=5.0)
    assert zygotes.died(11) is Death.LOADING
    assert zygotes.current == 10


def test_a_late_loading_zygote_is_given_up() -> None:
    zygotes = started()
    zygotes.begin_reload(11, now=0.0, timeout=5.0)
    assert zygotes.maybe_late(4.9) is None
    assert zygotes.maybe_late(5.0) == 11
    assert zygotes.loading is None
    assert zygotes.maybe_late(6.0) is None
    assert zygotes.current == 10


def test_a_second_reload_while_loading_supersedes_the_first() -> None:
    zygotes = started()
    zygotes.begin_reload(11, now=0.0, timeout=5.0)
    assert zygotes.begin_reload(12, now=1.0, timeout=5.0) == [11]
    assert zygotes.died(11) is Death.EXPECTED  # killed by the driver: no abort
    assert zygotes.loaded(11) is None
    assert zygotes.loaded(12) == [10]
    assert zygotes.generation == 2


def test_the_current_zygote_dying_means_a_new_one_at_the_next_spawn() -> None:
    zygotes = started()
    assert zygotes.died(10) is Death.CURRENT
    assert zygotes.current is None
    zygotes.started(13)  # a respawn started and loaded a new one: same generation
    assert (zygotes.current, zygotes.generation) == (13, 1)


def test_a_reload_with_no_current_zygote_retires_nothing() -> None:
    zygotes = started()
    zygotes.died(10)
    zygotes.begin_reload(11, now=0.0, timeout=5.0)
    assert zygotes.loaded(11) == []
    assert zygotes.current == 11
