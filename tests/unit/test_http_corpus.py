"""Our HTTP request corpus (tests/http_cases) through the protocol layer, and against h11.

Every case is fed whole, line by line, byte by byte and in seeded random chunks, and must give
the same outcome each way: the same requests, or the same refusal.  h11 is the referee: for a
valid case it reads the same requests; for an invalid one it refuses too, unless the case says
why we differ (and then h11 must really differ, so that notes cannot go stale).
"""

from __future__ import annotations

import dataclasses

import pytest

from cotyledon.wsgi._http_protocol import Limits
from tests.http_cases.corpus import Case, load_cases
from tests.http_cases.runner import FEED_MODES, Outcome, pieces, run_h11, run_ours, seed_for

CASES = load_cases()


def _limits(case: Case) -> Limits:
    return Limits(**dict(case.limits))


def _check_expected(case: Case, outcome: Outcome) -> None:
    if case.valid:
        assert outcome.error is None, f"refused with {outcome.error}: {case.about or case.rfc}"
        got = [(r.method, r.target, r.version, r.body) for r in outcome.requests]
        want = [(e.method, e.target, e.version, e.body) for e in case.requests]
        assert got == want
    else:
        assert outcome.error == case.status, case.rfc


def test_corpus_is_large_and_balanced() -> None:
    assert len(CASES) >= 300
    assert sum(case.valid for case in CASES) >= 60
    assert all(case.rfc for case in CASES), "every case cites its rule"


@pytest.mark.parametrize("mode", FEED_MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_case(case: Case, mode: str) -> None:
    outcome = run_ours(pieces(case.data, mode, seed_for(case.id)), _limits(case))
    _check_expected(case, outcome)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_case_against_h11(case: Case) -> None:
    ours = run_ours([case.data], _limits(case))
    theirs = run_h11(case.data)
    if case.h11_differs is None:
        if case.valid:
            assert theirs.error is None, f"h11 refuses ({theirs.error}) a case we accept"
            assert theirs.requests == ours.requests
        else:
            assert theirs.error is not None, "h11 accepts a case we refuse"
            # no request before the refusal may differ either
            assert theirs.requests == ours.requests
    else:
        assert theirs != ours, f"h11 now agrees; drop the note: {case.h11_differs}"


@pytest.mark.parametrize("case", [case for case in CASES if case.valid], ids=lambda case: case.id)
def test_valid_case_extra_bytes_never_merge(case: Case) -> None:
    """A valid stream followed by garbage: the valid requests are read, then a refusal."""
    outcome = run_ours([case.data + b"\x01garbage\r\n\r\n"], _limits(case))
    expected = [(e.method, e.target, e.version, e.body) for e in case.requests]
    got = [(r.method, r.target, r.version, r.body) for r in outcome.requests]
    assert got == expected
    last = outcome.requests[-1]
    connection = b",".join(v.lower() for n, v in last.headers if n == b"connection")
    closes = b"close" in connection or (last.version == b"1.0" and b"keep-alive" not in connection)
    if not closes:
        assert outcome.error == 400


def test_outcome_is_a_value() -> None:
    # Outcomes compare by value: the mode-equality checks above rely on it.
    a = run_ours([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"])
    b = run_ours([b"GET / HTTP/1.1\r\n", b"Host: a\r\n\r\n"])
    assert a == b
    assert dataclasses.replace(a, error=400) != a
