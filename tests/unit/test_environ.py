"""PEP 3333 environ: paths, headers, underscores dropped, proxies trusted only when allowed."""

from __future__ import annotations

import io
import sys

import pytest

from cotyledon.wsgi._environ import (
    EnvironBuilder,
    ProxyTrust,
    decode_path,
    header_key,
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


def test_forwarded_header() -> None:
    headers = (
        (b"host", b"h"),
        (b"forwarded", b'for=1.2.3.4;proto=http, for="[2001:db8::1]:80";proto=https'),
    )
    env = _build(_request(headers=headers), peer=("::1", 1, 0, 0))
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert env["wsgi.url_scheme"] == "https"


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
