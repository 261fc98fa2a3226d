"""Hypothesis fuzzing of the protocol layer.

Properties: whatever bytes arrive, in whatever pieces, only ``HTTPError`` escapes; the reading
does not depend on how the bytes were split; no request is ever read as two (nor two as one):
when h11 and we both accept a stream, we read the same requests with the same bodies; and any
sequence of API calls fails only with ``HTTPError``.
"""

from __future__ import annotations

import contextlib
import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotyledon.wsgi._http_events import HTTPError, LocalProtocolError
from cotyledon.wsgi._http_protocol import ServerConnection, State
from tests.http_cases.corpus import load_cases
from tests.http_cases.runner import Outcome, run_h11, run_ours

VALID = [case.data for case in load_cases() if case.valid and not case.limits]
# HTTP_FUZZ_EXAMPLES=20000 for a long local run
FUZZ = settings(
    max_examples=int(os.environ.get("HTTP_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Bytes that matter to HTTP framing, so that mutations hit the interesting places.
INTERESTING = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b";", b",", b"0", b"\x00", b"a", b"\xff",
     b"\r\n\r\n", b"chunked", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
     b"Host: b\r\n", b"HTTP/1.1", b"\x0b", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]
)  # fmt: skip


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            data[where:where] = draw(INTERESTING)
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "replace":
            data[where : where + 1] = draw(INTERESTING)
        else:
            line_end = data.find(b"\n", where)
            if line_end >= 0:
                start = data.rfind(b"\n", 0, where) + 1
                data[line_end + 1 : line_end + 1] = data[start : line_end + 1]
    return bytes(data)


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _same_reading(a: Outcome, b: Outcome) -> None:
    assert a.requests == b.requests
    assert a.error == b.error


@FUZZ
@given(data=st.binary(max_size=300), cuts=st.data())
def test_arbitrary_bytes_only_raise_http_errors(data: bytes, cuts: st.DataObject) -> None:
    # run_ours lets only RemoteProtocolError through (as an Outcome); anything else fails here
    whole = run_ours([data])
    pieces = cuts.draw(split(data))
    _same_reading(whole, run_ours(pieces))


@FUZZ
@given(data=mutated_requests(), cuts=st.data())
def test_mutated_requests_read_the_same_in_any_pieces(data: bytes, cuts: st.DataObject) -> None:
    whole = run_ours([data])
    _same_reading(whole, run_ours(cuts.draw(split(data))))
    _same_reading(whole, run_ours([data[i : i + 1] for i in range(len(data))]))


@FUZZ
@given(data=mutated_requests())
def test_no_request_is_read_as_two(data: bytes) -> None:
    ours = run_ours([data])
    theirs = run_h11(data)
    # Wherever both read a request, it is the same request with the same body...
    for mine, h11s in zip(ours.requests, theirs.requests, strict=False):
        assert (mine.method, mine.target, mine.version, mine.body) == (
            h11s.method,
            h11s.target,
            h11s.version,
            h11s.body,
        )
    # ...and when both accept the whole stream, they read as many requests, except that h11
    # never keeps an HTTP/1.0 connection alive (it stops after the first 1.0 request).
    if ours.error is None and theirs.error is None and len(ours.requests) != len(theirs.requests):
        assert theirs.requests[-1].version == b"1.0"
        assert len(ours.requests) > len(theirs.requests)


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.one_of(mutated_requests(), st.just(b""))),
        st.tuples(st.just("next"), st.integers(1, 4)),
        st.tuples(
            st.just("respond"),
            st.sampled_from([100, 200, 204, 304, 404, 500, 101]),
            st.sampled_from([[], [(b"Content-Length", b"2")], [(b"Connection", b"close")]]),
        ),
        st.tuples(st.just("data"), st.sampled_from([b"", b"ok", b"longer body"])),
        st.tuples(st.just("end")),
        st.tuples(st.just("cycle")),
        st.tuples(st.just("continue")),
        st.tuples(st.just("no-keep-alive")),
        st.tuples(st.just("error")),
        st.tuples(st.just("external"), st.integers(0, 3)),
    ),
    max_size=25,
)


def _apply(conn: ServerConnection, action: tuple[object, ...]) -> None:
    name = action[0]
    if name == "receive":
        conn.receive_data(action[1])  # type: ignore[arg-type]
    elif name == "next":
        for _ in range(action[1]):  # type: ignore[attr-defined]
            conn.next_event()
    elif name == "respond":
        conn.send_response(action[1], list(action[2]))  # type: ignore[arg-type, call-overload]
    elif name == "data":
        conn.send_data(action[1])  # type: ignore[arg-type]
    elif name == "end":
        conn.send_end()
    elif name == "cycle":
        conn.start_next_cycle()
    elif name == "continue":
        conn.send_continue()
    elif name == "no-keep-alive":
        conn.disable_keep_alive()
    elif name == "error":
        conn.error_response(LocalProtocolError("fuzz"))
    else:
        conn.send_data_external(action[1])  # type: ignore[arg-type]


@FUZZ
@given(actions=ACTIONS)
def test_any_api_sequence_fails_only_with_http_errors(actions: list[tuple[object, ...]]) -> None:
    conn = ServerConnection()
    for action in actions:
        with contextlib.suppress(HTTPError):
            _apply(conn, action)
        # invariants that hold after every call
        if conn.keep_alive:
            assert conn.their_state is State.DONE
            assert conn.our_state is not State.ERROR
        if conn.their_state is State.ERROR:
            assert not conn.keep_alive


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_valid_corpus_in_fixed_size_pieces(size: int) -> None:
    """A deterministic companion to the fuzzers: every valid stream, fixed-size pieces."""
    for data in VALID:
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        _same_reading(run_ours([data]), run_ours(pieces))
