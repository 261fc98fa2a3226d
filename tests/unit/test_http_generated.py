"""Generated valid request streams: we read exactly what was built, and h11 reads the same.

Hypothesis builds pipelined streams of valid HTTP/1.1 requests from their parts (method,
target, fields, a body framed by Content-Length or chunked with random chunk sizes and
extensions, trailers), serialises them, and checks both parsers against the intent.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http_cases.runner import ReadRequest, run_h11, run_ours

SETTINGS = settings(
    max_examples=int(os.environ.get("HTTP_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHAR, min_size=1, max_size=12).map(str.encode)
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH"]), tokens)
PCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%"
segments = st.text(alphabet=PCHAR, max_size=8)
targets = st.builds(
    lambda segs, query: ("/" + "/".join(segs) + (f"?{query}" if query else "")).encode(),
    st.lists(segments, max_size=4),
    st.one_of(st.none(), st.text(alphabet=PCHAR + "/?", max_size=10)),
)
# field values: visible ASCII and obs-text, inner SP/HTAB, no surrounding whitespace
VCHARS = [bytes([b]) for b in [*range(0x21, 0x7F), *range(0x80, 0x100)]]
values = st.one_of(
    st.just(b""),
    st.builds(
        lambda first, middle: first + middle.strip(b" \t") if middle.strip(b" \t") else first,
        st.sampled_from(VCHARS),
        st.lists(st.sampled_from([*VCHARS, b" ", b"\t"]), max_size=12).map(b"".join),
    ),
)
RESERVED = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
RESERVED |= {b"content-type", b"te", b"trailer", b"upgrade"}
fields = st.lists(
    st.tuples(tokens.filter(lambda n: n.lower() not in RESERVED), values), max_size=6
)
# (no BWS around ";" and "=": RFC 9112 §7.1.1 allows it, we accept it, h11 does not)
CHUNK_EXT = st.sampled_from([b"", b";a", b";a=b", b';n="q;\\"x"', b";a;b=1"])


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, ReadRequest]:
    method, target = draw(methods), draw(targets)
    headers = [(b"host", b"example.com"), *((n.lower(), v) for n, v in draw(fields))]
    wire_headers = [(b"Host", b"example.com"), *draw(st.just(headers[1:]))]
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "none":
        body = b""
        framed = b""
    elif framing == "length":
        wire_headers.append((b"Content-Length", b"%d" % len(body)))
        headers.append((b"content-length", b"%d" % len(body)))
        framed = body
    else:
        wire_headers.append((b"Transfer-Encoding", b"chunked"))
        headers.append((b"transfer-encoding", b"chunked"))
        framed = b""
        rest = body
        while rest:
            size = draw(st.integers(1, len(rest)))
            ext = draw(CHUNK_EXT)
            framed += b"%x%s\r\n%s\r\n" % (size, ext, rest[:size])
            rest = rest[size:]
        framed += b"0\r\n"
        for name, value in draw(st.lists(st.tuples(tokens, values), max_size=2)):
            if name.lower() not in RESERVED | {b"authorization", b"cookie", b"set-cookie"}:
                framed += b"%s: %s\r\n" % (name, value)
        framed += b"\r\n"
    head = b"%s %s HTTP/1.1\r\n" % (method, target)
    head += b"".join(b"%s: %s\r\n" % (n, v) for n, v in wire_headers) + b"\r\n"
    return head + framed, ReadRequest(method, target, b"1.1", tuple(headers), body)


@SETTINGS
@given(stream=st.lists(requests(), min_size=1, max_size=3), cuts=st.randoms())
def test_generated_streams(stream: list[tuple[bytes, ReadRequest]], cuts: object) -> None:
    data = b"".join(wire for wire, _ in stream)
    expected = tuple(request for _, request in stream)
    ours = run_ours([data])
    assert ours.error is None
    assert ours.requests == expected
    pieces = []
    i = 0
    while i < len(data):
        n = cuts.randint(1, 20)  # type: ignore[attr-defined]
        pieces.append(data[i : i + n])
        i += n
    assert run_ours(pieces) == ours
    theirs = run_h11(data)
    assert theirs.error is None
    # h11 strips no bytes we keep: the same requests, field for field
    assert theirs.requests == expected
