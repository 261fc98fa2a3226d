"""Per-request deadlines as data (cotyledon.wsgi._request_deadlines), with a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cotyledon.wsgi._request_deadlines import DeadlineBook, Expired, Stuck


def test_nothing_to_watch_without_requests() -> None:
    book = DeadlineBook(timeout=5, grace=2)
    assert book.next_deadline() is None
    assert book.due(1e9) == []


def test_a_request_that_returns_in_time_is_never_reported() -> None:
    book = DeadlineBook(timeout=5, grace=2)
    assert book.start("t1", 10.0, "GET", "/") == 15.0
    assert book.due(14.9) == []
    assert book.finish("t1") is not None
    assert book.due(100.0) == []
    assert book.next_deadline() is None


def test_expired_once_then_stuck_once_after_the_grace() -> None:
    book = DeadlineBook(timeout=5, grace=2)
    book.start("t1", 10.0, "POST", "/slow")
    assert book.next_deadline() == 15.0
    (event,) = book.due(15.5)
    assert isinstance(event, Expired)
    assert (event.request.method, event.request.path) == ("POST", "/slow")
    assert book.due(16.0) == []
    assert book.next_deadline() == 17.5  # expired_at + grace
    (event,) = book.due(17.5)
    assert isinstance(event, Stuck)
    assert book.due(1000.0) == []
    assert book.next_deadline() is None  # nothing more to say about it
    assert book.finish("t1") is not None  # the thread came back at last


def test_a_request_returning_within_the_grace_is_not_stuck() -> None:
    book = DeadlineBook(timeout=1, grace=3)
    book.start("t1", 0.0, "GET", "/")
    assert [type(e) for e in book.due(1.0)] == [Expired]
    book.finish("t1")
    assert book.due(10.0) == []


def test_requests_are_independent() -> None:
    book = DeadlineBook(timeout=5, grace=1)
    book.start("a", 0.0, "GET", "/a")
    book.start("b", 3.0, "GET", "/b")
    assert [(type(e), e.request.key) for e in book.due(5.0)] == [(Expired, "a")]
    assert book.next_deadline() == 6.0
    assert [(type(e), e.request.key) for e in book.due(8.0)] == [
        (Stuck, "a"),
        (Expired, "b"),
    ]
    assert len(book) == 2


@given(
    starts=st.lists(st.floats(0, 100), min_size=1, max_size=20),
    checks=st.lists(st.floats(0, 300), min_size=1, max_size=30),
)
def test_each_request_is_reported_at_most_once_per_kind(
    starts: list[float], checks: list[float]
) -> None:
    book = DeadlineBook(timeout=10, grace=5)
    for i, start in enumerate(starts):
        book.start(i, start, "GET", "/")
    seen: list[tuple[type, object]] = []
    for now in sorted(checks):
        for event in book.due(now):
            seen.append((type(event), event.request.key))
            assert now >= event.request.deadline
    assert len(seen) == len(set(seen))
    for kind, key in seen:
        if kind is Stuck:
            assert (Expired, key) in seen
