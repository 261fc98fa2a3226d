"""PEP 3333 environ: paths, headers, underscores dropped, proxies trusted only when allowed."""

from __future__ import annotations

import io
import sys

import pytest

from cotyledon.wsgi._environ import (
    EnvironBuilder,
    ProxyTrust,
    client_ip,
    decode_path,
    header_key,
    parse_forwarded,
    parse_target,
    split_host,
    split_target,
)
from cotyledon.wsgi._http_events import Request


def _request(
    target: bytes = b"/",
    headers: tuple[tuple[bytes, bytes], ...] = ((b"host", b"example.com"),),
    method: bytes = b"GET",
    version: bytes = b"1.1",
) -> Request:
    return Request(method=method, target=target, http_version=version, headers=headers)


def _build(
    request: Request,
    peer: object = ("10.1.2.3", 5555),
    builder: EnvironBuilder | None = None,
) -> dict[str, object]:
    builder = builder or EnvironBuilder()
    base = builder.connection_base(("127.0.0.1", 8000), peer)
    return builder.build(base, request, io.BytesIO(b""))


def test_required_keys() -> None:
    body = io.BytesIO(b"")
    builder = EnvironBuilder(multithread=True, multiprocess=False, file_wrapper=list)
    base = builder.connection_base(("127.0.0.1", 8000), ("10.1.2.3", 5555))
    env = builder.build(base, _request(b"/a%20b/c?x=1&y=%20"), body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/a%20b/c?x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8000")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.1.2.3", "5555")
    assert env["HTTP_HOST"] == "example.com"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input"] is body
    assert env["wsgi.errors"] is sys.stderr
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.file_wrapper"] is list
    assert "CONTENT_LENGTH" not in env
    assert all(isinstance(v, str) for k, v in env.items() if k.isupper())


def test_base_is_not_shared_between_requests() -> None:
    builder = EnvironBuilder()
    base = builder.connection_base(("127.0.0.1", 8000), ("10.1.2.3", 1))
    first = builder.build(base, _request(headers=((b"x-a", b"1"), (b"host", b"h"))), None)
    second = builder.build(base, _request(), None)
    assert "HTTP_X_A" in first
    assert "HTTP_X_A" not in second


def test_path_is_latin1_bytes_in_str() -> None:
    env = _build(_request(b"/caf%C3%A9/%2F"))
    assert env["PATH_INFO"] == "/caf\xc3\xa9//"
    assert decode_path(b"/%ff") == "/\xff"


def test_absolute_form_target() -> None:
    assert split_target(b"http://example.com/p?q=1") == (b"/p", b"q=1")
    assert split_target(b"HTTPS://example.com") == (b"/", b"")
    assert split_target(b"*") == (b"*", b"")
    assert split_target(b"/p#frag") == (b"/p", b"")
    assert parse_target(b"http://a.example?q=1") == (b"a.example", b"/", b"q=1")
    assert parse_target(b"http://[::1]:8080/x/y?") == (b"[::1]:8080", b"/x/y", b"")
    assert parse_target(b"/a/http://b") == (None, b"/a/http://b", b"")


def test_absolute_form_keeps_the_query_and_its_authority_wins_over_host() -> None:
    # issue 9.6: the query was lost and Host was used instead of the target's authority
    env = _build(_request(b"http://a.example?q=1", headers=((b"host", b"other.example"),)))
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/", "q=1")
    assert env["HTTP_HOST"] == "a.example"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("a.example", "80")
    assert env["RAW_URI"] == "http://a.example?q=1"
    assert env["wsgi.url_scheme"] == "http"  # the connection's scheme, not the target's
    env = _build(_request(b"https://b.example/p%20q?x", headers=((b"host", b"h:1"),)))
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/p q", "x")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("b.example", "443")
    env = _build(_request(b"http://[2001:db8::1]:8080/p", headers=((b"host", b"h"),)))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("2001:db8::1", "8080")


def test_absolute_form_under_a_root_path() -> None:
    builder = EnvironBuilder(root_path="/api")
    env = _build(_request(b"http://a.example/api/users?id=1"), builder=builder)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == (
        "/api",
        "/users",
        "id=1",
    )


def test_asterisk_form_reaches_the_app_as_a_star() -> None:
    env = _build(_request(b"*", method=b"OPTIONS"))
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"]) == ("*", "", "*")
    assert env["SERVER_NAME"] == "example.com"


def test_content_headers_and_repeats() -> None:
    headers = (
        (b"host", b"h"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"5"),
        (b"accept", b"a"),
        (b"accept", b"b"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    )
    env = _build(_request(headers=headers, method=b"POST"))
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_underscore_headers_are_dropped() -> None:
    headers = ((b"host", b"h"), (b"x-auth_user", b"evil"), (b"x-auth-user", b"good"))
    env = _build(_request(headers=headers))
    assert env["HTTP_X_AUTH_USER"] == "good"
    env = _build(_request(headers=((b"host", b"h"), (b"x-auth_user", b"evil"))))
    assert "HTTP_X_AUTH_USER" not in env


def test_header_key_cache() -> None:
    assert header_key(b"user-agent") == "HTTP_USER_AGENT"
    assert header_key(b"content-type") == "CONTENT_TYPE"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", "80")),
        ("example.com:8080", ("example.com", "8080")),
        ("[::1]:9000", ("::1", "9000")),
        ("[::1]", ("::1", "80")),
        ("bad:port", ("bad:port", "80")),
    ],
)
def test_split_host(host: str, expected: tuple[str, str]) -> None:
    assert split_host(host, "80") == expected


def test_root_path() -> None:
    builder = EnvironBuilder(root_path="/api")
    env = _build(_request(b"/api/users"), builder=builder)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/users")
    env = _build(_request(b"/api"), builder=builder)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "")
    env = _build(_request(b"/apiary"), builder=builder)
    assert env["PATH_INFO"] == "/apiary"


PROXY_HEADERS = (
    (b"host", b"h"),
    (b"x-forwarded-for", b"1.1.1.1, 203.0.113.9"),
    (b"x-forwarded-proto", b"https"),
)


def test_proxy_headers_from_trusted_peer() -> None:
    env = _build(_request(headers=PROXY_HEADERS), peer=("127.0.0.1", 40000))
    assert env["REMOTE_ADDR"] == "203.0.113.9"  # the hop the proxy saw, not the forged one
    assert "REMOTE_PORT" not in env
    assert env["wsgi.url_scheme"] == "https"


def test_proxy_headers_ignored_from_untrusted_peer() -> None:
    env = _build(_request(headers=PROXY_HEADERS), peer=("10.9.9.9", 40000))
    assert env["REMOTE_ADDR"] == "10.9.9.9"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 203.0.113.9"


def test_underscore_proxy_header_cannot_sneak_in() -> None:
    headers = ((b"host", b"h"), (b"x-forwarded_proto", b"https"))
    env = _build(_request(headers=headers), peer=("127.0.0.1", 1))
    assert env["wsgi.url_scheme"] == "http"


RFC7239 = EnvironBuilder(forwarded_headers="forwarded")


def test_forwarded_header() -> None:
    headers = (
        (b"host", b"h"),
        (b"forwarded", b'for=1.2.3.4;proto=http, for="[2001:db8::1]:80";proto=https'),
    )
    env = _build(_request(headers=headers), peer=("::1", 1, 0, 0), builder=RFC7239)
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert "REMOTE_PORT" not in env
    assert env["wsgi.url_scheme"] == "https"


def test_forwarded_is_ignored_when_x_forwarded_is_the_family() -> None:
    # issue 9.5: behind nginx (X-Forwarded-* set, other client headers passed through)
    # a client's own Forwarded header made it 10.0.0.1 over https.
    headers = (
        (b"host", b"h"),
        (b"forwarded", b"for=10.0.0.1;proto=https"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"http"),
    )
    env = _build(_request(headers=headers), peer=("127.0.0.1", 1))
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_FORWARDED"] == "for=10.0.0.1;proto=https"  # a plain client header
    env = _build(_request(headers=headers[:2]), peer=("127.0.0.1", 1))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("127.0.0.1", "1")
    assert env["wsgi.url_scheme"] == "http"


def test_x_forwarded_is_ignored_when_forwarded_is_the_family() -> None:
    headers = (
        (b"host", b"h"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-proto", b"https"),
    )
    env = _build(_request(headers=headers), peer=("127.0.0.1", 1), builder=RFC7239)
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    headers += ((b"forwarded", b"for=198.51.100.7;proto=https"),)
    env = _build(_request(headers=headers), peer=("127.0.0.1", 1), builder=RFC7239)
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("198.51.100.7", "https")


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="'forwarded_headers' must be one of"):
        EnvironBuilder(forwarded_headers="both")


@pytest.mark.parametrize(
    "value",
    [b"not-an-ip", b"unknown", b"evil.example", b"1.2.3.4.5", b"", b"<script>", b"1.2.3.4:x"],
)
@pytest.mark.parametrize("peer", [("127.0.0.1", 1), ""])
def test_invalid_client_address_leaves_the_peer(value: bytes, peer: object) -> None:
    headers = ((b"host", b"h"), (b"x-forwarded-for", value))
    env = _build(_request(headers=headers), peer=peer)
    assert env["REMOTE_ADDR"] == (peer[0] if isinstance(peer, tuple) else "")
    forwarded = ((b"host", b"h"), (b"forwarded", b'for="%s"' % value))
    env = _build(_request(headers=forwarded), peer=peer, builder=RFC7239)
    assert env["REMOTE_ADDR"] == (peer[0] if isinstance(peer, tuple) else "")


def test_unix_socket_peer_takes_a_valid_forwarded_address() -> None:
    headers = ((b"host", b"h"), (b"x-forwarded-for", b"2001:DB8::0:1"))
    env = _build(_request(headers=headers), peer="")
    assert env["REMOTE_ADDR"] == "2001:db8::1"


def test_x_forwarded_for_hops_rule() -> None:
    builder = EnvironBuilder(forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"])

    def remote(xff: bytes) -> object:
        headers = ((b"host", b"h"), (b"x-forwarded-for", xff))
        return _build(_request(headers=headers), peer=("127.0.0.1", 1), builder=builder)[
            "REMOTE_ADDR"
        ]

    # right to left, trusted proxies are skipped; the first other hop is the client
    assert remote(b"6.6.6.6, 198.51.100.1, 10.0.0.2, 10.0.0.3") == "198.51.100.1"
    # every hop is a trusted proxy: the left-most one
    assert remote(b"10.1.1.1, 10.0.0.3") == "10.1.1.1"
    # an unreadable hop ends the walk: nothing left of it is believed
    assert remote(b"198.51.100.1, garbage, 10.0.0.3") == "127.0.0.1"
    assert remote(b"1.1.1.1,,  , 10.0.0.3") == "1.1.1.1"
    # a repeated header line joins the list (the proxy's line comes last)
    headers = (
        (b"host", b"h"),
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"x-forwarded-for", b"198.51.100.1"),
    )
    env = _build(_request(headers=headers), peer=("127.0.0.1", 1), builder=builder)
    assert env["REMOTE_ADDR"] == "198.51.100.1"


def test_forwarded_hops_rule() -> None:
    builder = EnvironBuilder(
        forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"], forwarded_headers="forwarded"
    )

    def remote(value: bytes) -> object:
        headers = ((b"host", b"h"), (b"forwarded", value))
        return _build(_request(headers=headers), peer=("127.0.0.1", 1), builder=builder)[
            "REMOTE_ADDR"
        ]

    assert remote(b"for=6.6.6.6, for=198.51.100.1;by=x, for=10.0.0.2") == "198.51.100.1"
    # an element without a usable for= (obfuscated, unknown, missing) ends the walk
    assert remote(b"for=6.6.6.6, for=_hidden") == "127.0.0.1"
    assert remote(b"for=6.6.6.6, proto=https") == "127.0.0.1"
    assert remote(b'for="[2001:db8::7]:4711"') == "2001:db8::7"


def test_client_ip_forms() -> None:
    assert client_ip("192.0.2.1") == "192.0.2.1"
    assert client_ip(" 192.0.2.1:4711 ") == "192.0.2.1"
    assert client_ip("[2001:db8::1]") == "2001:db8::1"
    assert client_ip('"[2001:db8::1]:80"') == "2001:db8::1"
    assert client_ip("2001:db8::1") == "2001:db8::1"
    for bad in ("[2001:db8::1", "[::1]x", "[::1]:", "_hidden", "unknown", "a:b", "", "::1]"):
        assert client_ip(bad) is None, bad


def test_parse_forwarded_keeps_quoted_separators() -> None:
    assert parse_forwarded('for="[::1]:80";proto=https, For=1.2.3.4;x="a,b;c"') == [
        {"for": "[::1]:80", "proto": "https"},
        {"for": "1.2.3.4", "x": "a,b;c"},
    ]


def test_networks_and_star() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    assert trust.trusts(("10.2.3.4", 1))
    assert not trust.trusts(("11.0.0.1", 1))
    assert trust.trusts("/run/app.sock")  # unix-socket peers are local
    assert trust.trusts(("::ffff:10.0.0.1", 1, 0, 0))
    assert not trust.trusts_ip("not-an-ip")
    assert ProxyTrust(["*"]).trusts(("8.8.8.8", 1))


def test_unix_socket_listener() -> None:
    builder = EnvironBuilder()
    base = builder.connection_base("/run/app.sock", "")
    env = builder.build(base, _request(headers=()), None)
    assert env["SERVER_NAME"] == "localhost"
    assert env["REMOTE_ADDR"] == ""
